"""The point-in-time join: per entity row and view, the latest row at or before its time."""

from __future__ import annotations

import random
from datetime import timedelta

import pyarrow as pa
import pytest

from jstore.durations import floor_to_step
from jstore.errors import InputError
from jstore.model import (
    Aggregation,
    Entity,
    EventSource,
    FieldSpec,
    SqlFeatureView,
    WindowedFeatureView,
)
from jstore.offline import pit_join
from jstore.repo import FeatureRepo
from tests.factories import stage_rows
from tests.offline.conftest import HOUR, T0, account, card, payments
from tests.offline.spark_engine import spark_point_in_time_join

DAY = timedelta(days=1)
ENGINES = ["default", "database", "ranges", pytest.param("spark", marks=pytest.mark.spark)]
"""The engines a test marked `@pytest.mark.parametrize("join", ENGINES, indirect=True)` runs
against: the same rows are expected of each (Spark's are kept to the most telling tests: each
costs seconds). `default` reads the candidate rows from the published files; `database` is
the default engine fetching them from PostgreSQL, as for a table without published files;
`ranges` is the default engine with a budget of a few spans and batches of a few rows, so that
every view is cut into key code ranges joined one after the other (from PostgreSQL)."""


def without_published_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every view's candidate rows from PostgreSQL, as for tables without published files."""
    monkeypatch.setattr(pit_join, "file_ranges", lambda *args: None)


def cut_into_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """A join budget of 3 spans per range and batches of 16 entity rows in every pass."""
    monkeypatch.setattr(pit_join, "RANGE_SPANS", 3)
    monkeypatch.setattr(pit_join, "BATCH_ROWS", 16)
    monkeypatch.setattr(pit_join, "FIRST_PASS_ROWS", 16)


@pytest.fixture
def join(request, store, settings, tmp_path):
    """`point_in_time_join(entity_rows, features, coverage)` of the engine asked (default:
    the default engine)."""
    engine = getattr(request, "param", "default")
    if engine == "default":
        return store.point_in_time_join
    if engine == "database":
        without_published_files(request.getfixturevalue("monkeypatch"))
        return store.point_in_time_join
    if engine == "ranges":
        cut_into_ranges(request.getfixturevalue("monkeypatch"))
        return store.point_in_time_join
    spark = request.getfixturevalue("spark")
    return lambda *args: spark_point_in_time_join(spark, settings, tmp_path, *args)


def _spend(bank, account_id, hours, count, total, top):
    return {
        "bank": bank,
        "account_id": account_id,
        "feature_ts": T0 + hours * HOUR,
        "count_1h": count,
        "amount_sum_1h": total,
        "amount_max_1h": top,
    }


def _features(view, *names):
    return [(view, view.feature(n)) for n in names]


@pytest.mark.parametrize("join", ENGINES, indirect=True)
def test_golden_rows(join, store, settings, spend_view):
    """Stored: a1 changed at 01:00 and drained at 03:00; covered [00:00, 04:00)."""
    rows = [_spend("x", 1, 1, 2, 30.0, 20.0), _spend("x", 1, 3, 0, 0.0, None)]
    store.publish(spend_view, stage_rows(settings, spend_view, rows, T0, T0 + 4 * HOUR, "r"))
    entities = pa.table(
        {
            "bank": ["x", "x", "x", "x", "x", "y"],
            "account_id": [1, 1, 1, 1, 1, 1],
            "event_timestamp": [
                T0 + 30 * timedelta(minutes=1),  # before the first row: empty values
                T0 + HOUR,  # exactly at feature_ts: that row counts
                T0 + 2 * HOUR + timedelta(minutes=59),  # still the 01:00 row
                T0 + 3 * HOUR,  # drained
                T0 + 4 * HOUR,  # past coverage: null
                T0 + 2 * HOUR,  # never seen: empty values
            ],
            "label": ["a", "b", "c", "d", "e", "f"],
        }
    )
    joined = join(
        entities,
        _features(spend_view, "count_1h", "amount_sum_1h", "amount_max_1h"),
        {spend_view.table: [(T0, T0 + 4 * HOUR)]},
    )
    assert joined.table.column_names == [
        "bank",
        "account_id",
        "event_timestamp",
        "label",
        "account_spend__count_1h",
        "account_spend__amount_sum_1h",
        "account_spend__amount_max_1h",
    ]
    assert joined.table.select(["label", *joined.table.column_names[4:]]).to_pylist() == [
        {
            "label": "a",
            "account_spend__count_1h": 0,
            "account_spend__amount_sum_1h": 0.0,
            "account_spend__amount_max_1h": None,
        },
        {
            "label": "b",
            "account_spend__count_1h": 2,
            "account_spend__amount_sum_1h": 30.0,
            "account_spend__amount_max_1h": 20.0,
        },
        {
            "label": "c",
            "account_spend__count_1h": 2,
            "account_spend__amount_sum_1h": 30.0,
            "account_spend__amount_max_1h": 20.0,
        },
        {
            "label": "d",
            "account_spend__count_1h": 0,
            "account_spend__amount_sum_1h": 0.0,
            "account_spend__amount_max_1h": None,
        },
        {
            "label": "e",
            "account_spend__count_1h": None,
            "account_spend__amount_sum_1h": None,
            "account_spend__amount_max_1h": None,
        },
        {
            "label": "f",
            "account_spend__count_1h": 0,
            "account_spend__amount_sum_1h": 0.0,
            "account_spend__amount_max_1h": None,
        },
    ]
    assert joined.uncovered_rows == {"account_spend__v1": 1}


@pytest.mark.parametrize("join", ENGINES, indirect=True)
def test_checkpoints_bound_what_is_read_and_what_is_covered(join, store, settings, spend_view):
    """Checkpoints of a 1h-step view are at midnight UTC. Stored: x/1 changed at 23:00 on day 0
    and has no row at day 1's checkpoint, so it was empty there. Covered from 12:00 on day 0."""
    rows = [_spend("x", 1, 23, 2, 30.0, 20.0)]
    start, end = T0 + 12 * HOUR, T0 + 48 * HOUR
    store.publish(spend_view, stage_rows(settings, spend_view, rows, start, end, "r"))
    entities = pa.table(
        {
            "bank": ["x", "x", "x"],
            "account_id": [1, 1, 1],
            "event_timestamp": [
                T0 + 13 * HOUR,  # its checkpoint (day 0 00:00) is not covered: null
                T0 + 23 * HOUR + 30 * timedelta(minutes=1),  # the 23:00 row
                T0 + 25 * HOUR,  # after day 1's checkpoint: the 23:00 row is not read
            ],
        }
    )

    joined = join(entities, _features(spend_view, "count_1h"), {spend_view.table: [(start, end)]})

    assert joined.table["account_spend__count_1h"].to_pylist() == [None, None, 0]
    assert joined.uncovered_rows == {"account_spend__v1": 2}


def _covered(t, intervals, view):
    """[C(T), T] inside one published interval, C(T) = T floored to the checkpoint period."""
    since = floor_to_step(t, view.definition.checkpoint_period)
    return any(s <= since and t < e for s, e in intervals)


def _oracle(entity_rows, stored, coverage, features):
    """Brute force: scan every stored row for every entity row."""
    out = []
    for row in entity_rows:
        values = {}
        for view, spec in features:
            t = row["event_timestamp"]
            column = f"{view.name}__{spec.name}"
            if not _covered(t, coverage[view.table], view):
                values[column] = None
                continue
            key = tuple(row[k] for k in view.join_keys)
            since = floor_to_step(t, view.definition.checkpoint_period)
            candidates = [
                r
                for r in stored[view.table]
                if tuple(r[k] for k in view.join_keys) == key and since <= r["feature_ts"] <= t
            ]
            latest = max(candidates, key=lambda r: r["feature_ts"], default=None)
            values[column] = spec.empty_value if latest is None else latest[spec.name]
        out.append({**row, **values})
    return out


@pytest.mark.parametrize(
    ("seed", "join"),
    [
        (1, "default"),
        (2, "default"),
        (3, "default"),
        (1, "database"),
        (2, "database"),
        (1, "ranges"),
        (2, "ranges"),
        pytest.param(1, "spark", marks=pytest.mark.spark),
    ],
    indirect=["join"],
)
def test_matches_a_brute_force_oracle(join, store, settings, spend_view, card_view, seed):
    rng = random.Random(seed)
    accounts = [(b, i) for b in ("x", "y") for i in range(4)]
    cards = [f"c{i}" for i in range(4)]
    spend = {}
    for bank, account_id in accounts[:6]:  # the last two accounts are never stored
        for h in rng.sample(range(72), 8):
            count = rng.choice([0, 1, 3])
            spend[(bank, account_id, h)] = _spend(
                bank, account_id, h, count, 1.5 * count, None if count == 0 else rng.random()
            )
    daily = [
        {"card_id": c, "feature_ts": T0 + d * DAY, "count_1d": rng.randint(0, 5)}
        for c in cards[:3]
        for d in sorted(rng.sample(range(3), 2))
    ]
    # Spend published as two runs with a gap [24h, 36h); cards cover [day 0, day 3).
    spend_rows = list(spend.values())
    for name, (s, e) in {"a": (0, 24), "b": (36, 72)}.items():
        inside = [r for r in spend_rows if T0 + s * HOUR <= r["feature_ts"] < T0 + e * HOUR]
        store.publish(
            spend_view, stage_rows(settings, spend_view, inside, T0 + s * HOUR, T0 + e * HOUR, name)
        )
    store.publish(card_view, stage_rows(settings, card_view, daily, T0, T0 + 3 * DAY, "d"))
    published_spend = [
        r
        for r in spend_rows
        if r["feature_ts"] < T0 + 24 * HOUR or r["feature_ts"] >= T0 + 36 * HOUR
    ]
    coverage = {
        spend_view.table: [(T0, T0 + 24 * HOUR), (T0 + 36 * HOUR, T0 + 72 * HOUR)],
        card_view.table: [(T0, T0 + 3 * DAY)],
    }
    entity_rows = []
    for i in range(300):
        bank, account_id = rng.choice(accounts)
        minutes = rng.randrange(-60, 80 * 60)
        if rng.random() < 0.3:  # ties: exactly on a step
            minutes -= minutes % 60
        entity_rows.append(
            {
                "bank": bank,
                "account_id": account_id,
                "card_id": rng.choice([*cards, "unseen"]),
                "event_timestamp": T0 + timedelta(minutes=minutes),
                "row": i,
            }
        )
    features = _features(spend_view, "count_1h", "amount_max_1h") + _features(card_view, "count_1d")
    joined = join(pa.Table.from_pylist(entity_rows), features, coverage)
    stored = {spend_view.table: published_spend, card_view.table: daily}
    assert joined.table.to_pylist() == _oracle(entity_rows, stored, coverage, features)
    assert {r["account_spend__count_1h"] for r in joined.table.to_pylist()} >= {None, 0, 1, 3}
    expected_uncovered = {
        view.table: sum(
            not _covered(r["event_timestamp"], coverage[view.table], view) for r in entity_rows
        )
        for view in (spend_view, card_view)
    }
    assert joined.uncovered_rows == expected_uncovered
    assert expected_uncovered[spend_view.table] > 0


@pytest.mark.parametrize("join", ["default", "database", "ranges"], indirect=True)
@pytest.mark.parametrize(("seed", "step_days"), [(1, 1), (2, 1), (3, 7)])
def test_months_apart_match_the_oracle(join, store, settings, seed, step_days):
    """Entity rows over 150 days (a daily view) or 150 weeks (weekly), a key asked at a few
    far-apart times or at many: its spans cross chunks of pit_candidates.CHUNK_PERIODS
    periods and gaps of more than pit_spans.GAP_PERIODS, with the oracle's rows all the
    same."""
    repo = FeatureRepo.of(
        card,
        payments,
        WindowedFeatureView(
            name="card_steps",
            entities=["card"],
            source="payments",
            step=f"{step_days}d",
            aggregations=[Aggregation(function="count", windows=[f"{step_days}d"])],
        ),
    )
    view = repo.resolve("card_steps", 1)
    rng = random.Random(seed)
    step, steps = step_days * DAY, 150
    start = floor_to_step(T0, step)
    cards = [f"c{i}" for i in range(5)]
    count = f"count_{step_days}d"
    stored = [
        {"card_id": c, "feature_ts": start + s * step, count: rng.randint(1, 9)}
        for c in cards[:4]
        for s in sorted(rng.sample(range(steps), 40 if c == "c0" else 6))
    ]
    store.publish(view, stage_rows(settings, view, stored, start, start + steps * step, "s"))
    coverage = {view.table: [(start, start + steps * step)]}
    entity_rows = []
    for i in range(200):
        card_id = rng.choice(cards)
        at = rng.randrange(steps + 2) if card_id in ("c0", "c4") else rng.choice([3, 70, 71, 140])
        minutes = at * step_days * 24 * 60 + rng.choice([0, rng.randrange(step_days * 24 * 60)])
        entity_rows.append(
            {"card_id": card_id, "event_timestamp": start + timedelta(minutes=minutes), "row": i}
        )
    features = _features(view, count)
    joined = join(pa.Table.from_pylist(entity_rows), features, coverage)
    expected = _oracle(entity_rows, {view.table: stored}, coverage, features)
    assert joined.table.to_pylist() == expected
    assert {r[f"card_steps__{count}"] for r in expected} > {None, 0}


@pytest.mark.parametrize("join", ENGINES, indirect=True)
def test_event_timestamps_as_text_and_naive(join, store, settings, card_view):
    store.publish(
        card_view,
        stage_rows(
            settings,
            card_view,
            [{"card_id": "c", "feature_ts": T0, "count_1d": 4}],
            T0,
            T0 + DAY,
            "r",
        ),
    )
    entities = pa.table(
        {
            "card_id": ["c", "c", "c"],
            "event_timestamp": [
                "2024-05-01T00:00:00Z",
                "2024-05-01 05:00:00",
                "2024-04-30T23:59:59Z",
            ],
        }
    )
    joined = join(
        entities, _features(card_view, "count_1d"), {card_view.table: [(T0 - DAY, T0 + DAY)]}
    )
    assert joined.table["card_daily__count_1d"].to_pylist() == [4, 4, 0]
    assert joined.table["event_timestamp"].to_pylist() == entities["event_timestamp"].to_pylist()


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ({"card": ["c"], "event_timestamp": [T0]}, r"card_id: missing join key column"),
        ({"card_id": ["c"]}, r"event_timestamp: missing column"),
        ({"card_id": ["c"], "event_timestamp": ["yesterday"]}, r"event_timestamp: not ISO-8601"),
        ({"card_id": ["c"], "event_timestamp": [None]}, r"event_timestamp: row 0 has no timestamp"),
        (
            {"card_id": ["c"], "event_timestamp": [T0], "card_daily__count_1d": [1]},
            r"card_daily__count_1d: the entity rows already have this column",
        ),
    ],
)
def test_bad_entity_rows_are_refused_naming_the_column(store, card_view, entities, message):
    with pytest.raises(InputError, match=message):
        store.point_in_time_join(
            pa.table(entities), _features(card_view, "count_1d"), {card_view.table: []}
        )


@pytest.mark.parametrize("join", ["default", "database", "ranges"], indirect=True)
def test_no_entity_rows_or_only_null_keys(join, card_view):
    """An empty batch (a CSV file of its header alone), and a batch whose keys are all null:
    it asks for no stored row, and a null key matches none (its empty-window values)."""
    schema = pa.schema([("card_id", pa.string()), ("event_timestamp", pa.timestamp("us", "UTC"))])
    empty = pa.record_batch(
        [pa.array([], pa.string()), pa.array([], schema[1].type)], schema=schema
    )
    null_keys = pa.record_batch(
        [pa.array([None, None], pa.string()), pa.array([T0, T0])], schema=schema
    )
    coverage = {card_view.table: [(T0, T0 + DAY)]}
    features = _features(card_view, "count_1d")

    for batches, counts in (([empty], []), ([empty, null_keys], [0, 0])):
        joined = join(pa.Table.from_batches(batches), features, coverage)

        assert joined.table.column_names == ["card_id", "event_timestamp", "card_daily__count_1d"]
        assert joined.table["card_daily__count_1d"].to_pylist() == counts


def test_a_view_never_published_gives_nulls(store, card_view):
    entities = pa.table({"card_id": ["c"], "event_timestamp": [T0]})
    joined = store.point_in_time_join(entities, _features(card_view, "count_1d"), {})
    assert joined.table["card_daily__count_1d"].to_pylist() == [None]
    assert joined.uncovered_rows == {"card_daily__v1": 1}


def test_feature_columns_follow_the_order_of_the_references(store, spend_view, card_view):
    entities = pa.table(
        {"bank": ["x"], "account_id": [1], "card_id": ["c"], "event_timestamp": [T0]}
    )
    features = [
        (spend_view, spend_view.feature("amount_max_1h")),
        (card_view, card_view.feature("count_1d")),
        (spend_view, spend_view.feature("count_1h")),
        (spend_view, spend_view.feature("amount_max_1h")),
    ]
    joined = store.point_in_time_join(entities, features, {})
    assert joined.table.column_names[4:] == [
        "account_spend__amount_max_1h",
        "card_daily__count_1d",
        "account_spend__count_1h",
    ]


def test_one_feature_of_two_versions_is_refused(store, spend_view):
    v2 = spend_view.model_copy(update={"version": 2})
    entities = pa.table({"bank": ["x"], "account_id": [1], "event_timestamp": [T0]})
    features = [(spend_view, spend_view.feature("count_1h")), (v2, v2.feature("count_1h"))]
    with pytest.raises(InputError, match="account_spend__count_1h is asked of two versions"):
        store.point_in_time_join(entities, features, {})


PROFILE_REPO = FeatureRepo.of(
    account,
    payments,
    SqlFeatureView(
        name="account_profile",
        entities=["account"],
        source="payments",
        step="1h",
        window="1h",
        query="SELECT bank, account_id, max(card_id) AS last_card FROM input_data GROUP BY 1, 2",
        features=[
            FieldSpec(name="last_card", dtype="string"),
            FieldSpec(name="flagged", dtype="bool"),
            FieldSpec(name="last_seen", dtype="timestamp"),
            FieldSpec(name="score", dtype="float64"),
        ],
    ),
)


@pytest.mark.parametrize(
    ("text_feature", "join"),
    [
        (True, "default"),
        (False, "default"),
        (True, "ranges"),
        pytest.param(True, "spark", marks=pytest.mark.spark),
    ],
    indirect=["join"],
)
def test_every_feature_type_and_null_keys_match_the_oracle(join, store, settings, text_feature):
    """Text features come back by CSV, the others by binary COPY: both give the oracle's rows,
    stored nulls stay null, and an entity row with a null key gets the empty values."""
    view = PROFILE_REPO.resolve("account_profile", 1)
    asked = view.features if text_feature else view.features[1:]
    rng = random.Random(4)
    stored = [
        {
            "bank": bank,
            "account_id": account_id,
            "feature_ts": T0 + h * HOUR,
            "last_card": rng.choice(["c1", "", 'c"2', None]),
            "flagged": rng.choice([True, False, None]),
            "last_seen": rng.choice([T0 + h * HOUR - timedelta(microseconds=7), None]),
            "score": rng.choice([0.1 * h, float("inf"), None]),
        }
        for bank, account_id in [("x", 1), ("x", 2), ("y", 1)]
        for h in sorted(rng.sample(range(48), 10))
    ]
    store.publish(view, stage_rows(settings, view, stored, T0, T0 + 48 * HOUR, "p"))
    entity_rows = [
        {
            "bank": rng.choice(["x", "y", None]),
            "account_id": rng.choice([1, 2, 3]),
            "event_timestamp": T0 + timedelta(minutes=rng.randrange(-30, 50 * 60)),
        }
        for _ in range(200)
    ]
    coverage = {view.table: [(T0, T0 + 48 * HOUR)]}
    features = [(view, spec) for spec in asked]
    joined = join(pa.Table.from_pylist(entity_rows), features, coverage)
    expected = _oracle(entity_rows, {view.table: stored}, coverage, features)
    assert joined.table.to_pylist() == expected
    assert any(r["bank"] is None for r in entity_rows)
    assert {r["account_profile__flagged"] for r in expected} == {True, False, None}


def test_a_view_of_more_than_63_features_keeps_each_null(store, settings):
    """Nulls travel as bits of one null mask per 63 features."""
    features = [FieldSpec(name=f"f{i}", dtype="int64") for i in range(70)]
    repo = FeatureRepo.of(
        account,
        payments,
        SqlFeatureView(
            name="wide",
            entities=["account"],
            source="payments",
            step="1h",
            window="1h",
            query="SELECT bank, account_id FROM input_data",
            features=features,
        ),
    )
    view = repo.resolve("wide", 1)
    row = {"bank": "x", "account_id": 1, "feature_ts": T0}
    row |= {f"f{i}": None if i in (0, 62, 63, 69) else i for i in range(70)}
    store.publish(view, stage_rows(settings, view, [row], T0, T0 + HOUR, "w"))
    entities = pa.table({"bank": ["x"], "account_id": [1], "event_timestamp": [T0]})
    joined = store.point_in_time_join(
        entities, [(view, spec) for spec in view.features], {view.table: [(T0, T0 + HOUR)]}
    )
    assert joined.table.to_pylist()[0] == {
        "bank": "x",
        "account_id": 1,
        "event_timestamp": T0,
        **{f"wide__f{i}": row[f"f{i}"] for i in range(70)},
    }


@pytest.mark.parametrize("join", ENGINES, indirect=True)
def test_a_timestamp_join_key_matches_to_the_microsecond(join, store, settings):
    cohort = Entity(name="cohort", join_keys=["opened_at"])
    openings = EventSource(
        name="openings",
        topic="openings",
        timestamp_field="ts",
        schema=[
            FieldSpec(name="opened_at", dtype="timestamp"),
            FieldSpec(name="ts", dtype="timestamp"),
        ],
    )
    repo = FeatureRepo.of(
        cohort,
        openings,
        WindowedFeatureView(
            name="cohort_openings",
            entities=["cohort"],
            source="openings",
            step="1h",
            aggregations=[Aggregation(function="count", windows=["1h"])],
        ),
    )
    view = repo.resolve("cohort_openings", 1)
    day = T0 - DAY + timedelta(microseconds=1)
    rows = [
        {"opened_at": day, "feature_ts": T0 + HOUR, "count_1h": 5},
        {"opened_at": T0 - DAY, "feature_ts": T0, "count_1h": 9},
    ]
    store.publish(view, stage_rows(settings, view, rows, T0, T0 + 4 * HOUR, "c"))
    entities = pa.table(
        {
            "opened_at": [day, day, T0 - DAY, T0 - DAY + timedelta(microseconds=2)],
            "event_timestamp": [T0, T0 + 2 * HOUR, T0 + 2 * HOUR, T0 + 2 * HOUR],
        }
    )
    joined = join(entities, [(view, view.feature("count_1h"))], {view.table: [(T0, T0 + 4 * HOUR)]})
    assert joined.table["cohort_openings__count_1h"].to_pylist() == [0, 5, 9, 0]
