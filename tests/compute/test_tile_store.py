"""Stored tiles against a real lake folder: every cause of stale tiles is found, exactly the
affected tiles are rebuilt, and the rows equal a full re-tile and the naive oracle.

Files are landed one at a time, as the lander and the extract write them, between runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.compute_features import changed_rows, stage_view
from jobs.lake_files import LakeFiles
from jobs.tile_store import TileStore, blocks_of
from jstore.arrow_types import ARROW_TYPES
from jstore.config import Settings
from jstore.model import Aggregation, WindowedFeatureView, resolve
from tests.compute.oracle import naive_rows
from tests.compute.windowing_helpers import at, clicks, resolved, shop, user

pytestmark = pytest.mark.spark

SPEND = WindowedFeatureView(
    name="spend",
    entities=["user"],
    source="clicks",
    step="1h",
    aggregations=[
        Aggregation(function="count", windows=["1h", "3h"]),
        Aggregation(function="sum", column="amount", windows=["1h", "1d"]),
        Aggregation(function="last", column="page", windows=["3h"]),
        Aggregation(function="count_distinct", column="page", windows=["1d"]),
    ],
)
LANDING_SCHEMA = pa.schema(
    [(f.name, ARROW_TYPES[f.dtype]) for f in clicks.schema_]
    + [
        ("_topic", pa.string()),
        ("_partition", pa.int32()),
        ("_offset", pa.int64()),
        ("_ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


def land(lake: Path, name: str, events: list[dict]) -> Path:
    """One landed file (all its events on one day), as the lander or an extract writes it."""
    rows = [
        {
            **{f.name: e.get(f.name) for f in clicks.schema_},
            "_topic": "clicks",
            "_partition": e.get("_partition", 0),
            "_offset": e["_offset"],
            "_ingested_at": datetime(2030, 1, 1, tzinfo=UTC),
        }
        for e in events
    ]
    (day,) = {e["ts"].date() for e in events}
    folder = lake / "landing" / "clicks" / f"event_date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=LANDING_SCHEMA), folder / f".{name}.tmp")
    (folder / f".{name}.tmp").replace(folder / name)
    return folder / name


def buys(user_id: str, *times: str, first_offset: int = 0, amount: float = 1.25) -> list[dict]:
    return [
        {
            "user_id": user_id,
            "amount": amount * (i + 1),
            "page": ["home", "cart", "pay"][i % 3],
            "ts": at(t),
            "_offset": first_offset + i,
        }
        for i, t in enumerate(times)
    ]


@pytest.fixture
def rows(spark, lake):
    """`rows(view, start, end, retile=False)`: the staged rows as sorted tuples."""

    def run(view, start: datetime, end: datetime, *, retile: bool = False) -> list[tuple]:
        df = changed_rows(spark, view, str(lake), start, end, retile=retile)
        return sorted(tuple(r.values()) for r in df.toArrow().to_pylist())

    return run


@pytest.fixture
def plan(spark, lake):
    """`plan(view, start, end)` -> {block: (reason, rebuilt tile-time ranges as "HH:MM")}."""

    def run(view, start: datetime, end: datetime) -> dict[str, tuple]:
        store = TileStore(spark, LakeFiles.at(str(lake)), view)
        lookback = view.definition.step + view.definition.max_window
        plans = store.plan(start - lookback, end, retile=False)
        return {p.block.name: (p.reason, [_clock(lo, hi) for lo, hi in p.rebuild]) for p in plans}

    return run


def _clock(lo: int, hi: int) -> str:
    def text(seconds: int) -> str:
        return datetime.fromtimestamp(seconds, UTC).strftime("%dd %H:%M")

    return f"{text(lo)}-{text(hi)}"


def manifest(lake: Path, table: str, block: str) -> dict:
    return json.loads((lake / "tiles" / table / f"block={block}" / "_manifest.json").read_text())


def test_blocks_are_checkpoint_periods_of_whole_days():
    hourly = int(SPEND.checkpoint_period.total_seconds())
    assert [b.name for b in blocks_of(at("22:00"), at("3d 01:00"), hourly)] == [
        "2024-05-01",
        "2024-05-02",
        "2024-05-03",
    ]
    five_hours = [b for b in blocks_of(at("00:00"), at("2d 00:00"), 5 * 86400)]
    assert [(b.name, len(b.days)) for b in five_hours] == [("2024-04-27", 5)]


def test_a_late_file_rebuilds_only_the_steps_it_touches(rows, plan, lake):
    view = resolved(SPEND)
    early = buys("u1", "10:05", "10:40", "12:30") + buys("u2", "2d 01:15", first_offset=3)
    land(lake, "clicks-0-0-2.parquet", early[:3])
    land(lake, "clicks-0-3-3.parquet", early[3:])
    start, end = at("06:00"), at("2d 06:00")
    assert rows(view, start, end) == naive_rows(view, early, start, end)
    day_two = manifest(lake, view.table, "2024-05-02")

    late = buys("u1", "10:50", "15:10", first_offset=4, amount=0.5) + buys(
        "u3", "11:20", first_offset=6
    )
    land(lake, "clicks-0-4-6.parquet", late)
    assert plan(view, start, end) == {
        "2024-04-30": ("empty", []),
        "2024-05-01": ("new files", ["01d 10:00-01d 16:00"]),
        "2024-05-02": ("fresh", []),
    }
    incremental = rows(view, start, end)
    assert incremental == naive_rows(view, early + late, start, end)
    assert manifest(lake, view.table, "2024-05-02")["parts"] == day_two["parts"]
    assert plan(view, start, end)["2024-05-01"] == ("fresh", [])
    assert incremental == rows(view, start, end, retile=True)


def test_a_kafka_record_landed_twice_counts_once_across_files(rows, plan, lake):
    view = resolved(SPEND)
    first = buys("u1", "10:05", "10:20", "10:40", "11:10")
    land(lake, "clicks-0-0-3.parquet", first)
    start, end = at("10:00"), at("14:00")
    assert rows(view, start, end) == naive_rows(view, first, start, end)
    relanded = first[2:] + buys("u1", "11:30", first_offset=4)
    land(lake, "clicks-0-2-4.parquet", relanded)
    assert plan(view, start, end)["2024-05-01"] == ("new files", ["01d 10:00-01d 12:00"])
    incremental = rows(view, start, end)
    assert incremental == naive_rows(view, first + relanded, start, end)
    assert incremental == rows(view, start, end, retile=True)
    assert [r[2] for r in incremental[:2]] == [3, 2]  # count_1h at 11:00 and 12:00: 5 records


def test_a_re_extracted_table_interval_rebuilds_its_blocks(rows, plan, lake):
    view = resolved(SPEND)
    table = [dict(e, _partition=None, _offset=None) for e in buys("u1", "09:30", "10:15", "10:45")]
    extract = "extract-20240501T000000Z-20240502T000000Z-0.parquet"
    land(lake, extract, table)
    start, end = at("09:00"), at("14:00")
    assert rows(view, start, end) == naive_rows(view, table, start, end)
    corrected = [table[0], dict(table[2], amount=9.75)]
    land(lake, extract, corrected)
    assert plan(view, start, end)["2024-05-01"] == ("changed files", ["01d 00:00-02d 00:00"])
    incremental = rows(view, start, end)
    assert incremental == naive_rows(view, corrected, start, end)
    assert incremental == rows(view, start, end, retile=True)

    (lake / "landing" / "clicks" / "event_date=2024-05-01" / extract).unlink()
    land(lake, "extract-20240501T000000Z-20240502T000000Z-1.parquet", table[1:2])
    assert plan(view, start, end)["2024-05-01"][0] == "changed files"
    assert rows(view, start, end) == naive_rows(view, table[1:2], start, end)


def test_a_new_view_version_or_definition_gets_new_tiles(rows, plan, lake):
    events = buys("u1", "10:05", "11:40") + buys("u2", "10:30", first_offset=2)
    land(lake, "clicks-0-0-2.parquet", events)
    start, end = at("10:00"), at("14:00")
    v1 = resolved(SPEND)
    assert rows(v1, start, end) == naive_rows(v1, events, start, end)
    v1_manifest = manifest(lake, "spend__v1", "2024-05-01")

    changed = SPEND.model_copy(
        update={"aggregations": [Aggregation(function="max", column="amount", windows=["2h"])]}
    )
    v2 = resolve(changed, 2, {"user": user, "shop": shop}, {"clicks": clicks})
    assert plan(v2, start, end)["2024-05-01"] == ("missing", ["01d 00:00-02d 00:00"])
    assert rows(v2, start, end) == naive_rows(v2, events, start, end)
    assert manifest(lake, "spend__v2", "2024-05-01")["version"] == 2
    assert manifest(lake, "spend__v1", "2024-05-01") == v1_manifest

    # the same version number with other partials (a definition changed in place) is rebuilt too
    same_number = resolve(changed, 1, {"user": user, "shop": shop}, {"clicks": clicks})
    assert plan(same_number, start, end)["2024-05-01"][0] == "definition"
    assert rows(same_number, start, end) == naive_rows(same_number, events, start, end)


def test_retile_rebuilds_tiles_a_normal_run_would_trust(spark, rows, lake):
    view = resolved(SPEND)
    events = buys("u1", "10:05", "11:40")
    land(lake, "clicks-0-0-1.parquet", events)
    start, end = at("10:00"), at("14:00")
    expected = naive_rows(view, events, start, end)
    assert rows(view, start, end) == expected
    block = lake / "tiles" / "spend__v1" / "block=2024-05-01"
    (part,) = manifest(lake, "spend__v1", "2024-05-01")["parts"]
    tampered = pq.read_table(block / part).slice(0, 1)
    pq.write_table(tampered, block / part)
    assert rows(view, start, end) != expected  # a normal run trusts what it stored

    settings = Settings(lake_uri=str(lake))
    staged = stage_view(spark, settings, view, start, end, "retile-1", retile=True)
    staged_rows = sorted(tuple(r.values()) for r in pq.read_table(staged.path).to_pylist())
    assert staged_rows == expected
    assert manifest(lake, "spend__v1", "2024-05-01")["parts"] != [part]
    assert rows(view, start, end) == expected


def test_float_sums_are_bit_for_bit_whichever_batch_landed_them(rows, lake):
    """One tile's amounts, landed in three batches between runs, then re-tiled at once: a float
    sum depends on its order ((1e16 + 1) - 1e16 is 0, (1e16 - 1e16) + 1 is 1), so a tile is
    always summed from all its events in one order (event time, partition, offset)."""
    view = resolved(SPEND)
    amounts = [1e16, 1.0, -1e16, 0.1, 0.2, 0.3]
    events = [
        {"user_id": "u1", "amount": a, "page": "home", "ts": at(f"10:{10 + i:02d}"), "_offset": i}
        for i, a in enumerate(amounts)
    ]
    start, end = at("10:00"), at("13:00")
    for first, last in [(0, 1), (2, 3), (4, 5)]:
        land(lake, f"clicks-0-{first}-{last}.parquet", events[first : last + 1])
        rows(view, start, end)
    incremental = rows(view, start, end)
    in_order = 0.0
    for a in amounts:
        in_order += a
    assert [r[4] for r in incremental] == [in_order, 0.0]  # amount_sum_1h at 11:00, 12:00
    assert incremental == rows(view, start, end, retile=True)
    assert rows(view, at("11:00"), end) == [r for r in incremental if r[1] >= at("11:00")]


def test_hourly_runs_as_files_land_give_the_rows_of_one_run(rows, lake):
    view = resolved(SPEND)
    landed: list[dict] = []
    hourly: list[tuple] = []
    for hour in range(22, 26):  # the batch of [h, h + 1) lands, then [h + 1, h + 2) runs
        t = at("00:00") + timedelta(hours=hour)
        batch = [
            {"user_id": u, "amount": 0.25 * hour, "page": "pay", "ts": t + timedelta(minutes=m)}
            for u, m in [("u1", 5), ("u2", 30), ("u1", 50)]
        ]
        for i, event in enumerate(batch):
            event["_offset"] = 3 * hour + i
        land(lake, f"clicks-0-{3 * hour}-{3 * hour + 2}.parquet", batch)
        landed += batch
        hourly += rows(view, t + timedelta(hours=1), t + timedelta(hours=2))
    start, end = at("23:00"), at("2d 03:00")
    assert sorted(hourly) == naive_rows(view, landed, start, end)
    assert sorted(hourly) == rows(view, start, end, retile=True)
