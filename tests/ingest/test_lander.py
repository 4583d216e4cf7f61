"""The lander: what lands where, resume after the highest landed offset, bounded runs."""

from __future__ import annotations

import signal
from datetime import UTC, date, datetime, timedelta

import pytest

from jstore.config import Settings
from jstore.ingest.lander import LandingError, land
from jstore.ingest.landing import read_landing
from jstore.lake import landing_dir
from jstore.model import EventSource
from jstore.registry import Registry
from jstore.registry.late import late_intervals
from tests.ingest.conftest import Send, purchase, purchases_on
from tests.ingest.test_lander_crash import run_lander_cli

T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def landed_rows(settings: Settings, source: EventSource) -> list[tuple]:
    table = read_landing(settings, source).sort_by(
        [("_partition", "ascending"), ("_offset", "ascending")]
    )
    return [
        (r["_partition"], r["_offset"], r["user_id"], r["amount"], r["ts"], r["event_date"])
        for r in table.to_pylist()
    ]


def files(settings: Settings, source: str) -> list[str]:
    root = landing_dir(settings, source)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))


def test_events_land_by_event_date_with_partition_and_offset(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send(
        [
            (0, purchase("u1", 10.0, "2024-05-01T23:59:59Z")),
            (0, purchase("u2", 20.5, "2024-05-02T00:00:00Z")),
            (1, purchase("u3", 7, "2024-05-01T12:00:00+02:00")),
            (0, purchase("u1", 1.25, "2024-05-01T08:00:00")),
        ]
    )

    result = land(settings, registry, "purchases")

    utc = UTC
    assert landed_rows(settings, source) == [
        (0, 0, "u1", 10.0, datetime(2024, 5, 1, 23, 59, 59, tzinfo=utc), date(2024, 5, 1)),
        (0, 1, "u2", 20.5, datetime(2024, 5, 2, tzinfo=utc), date(2024, 5, 2)),
        (0, 2, "u1", 1.25, datetime(2024, 5, 1, 8, tzinfo=utc), date(2024, 5, 1)),
        (1, 0, "u3", 7.0, datetime(2024, 5, 1, 10, tzinfo=utc), date(2024, 5, 1)),
    ]
    t = source.topic
    assert files(settings, "purchases") == [
        f"event_date=2024-05-01/{t}-0-0-2.parquet",
        f"event_date=2024-05-01/{t}-1-0-0.parquet",
        f"event_date=2024-05-02/{t}-0-1-1.parquet",
    ]
    assert (result.rows, result.quarantined, result.late, result.files) == (4, 0, 0, 3)
    assert {p: (r.first, r.last, r.end) for p, r in result.partitions.items()} == {
        0: (0, 2, 3),
        1: (0, 0, 1),
        2: (None, None, 0),
    }
    run = registry.get_run(result.run_id)
    assert (run.kind, run.subject, run.status, run.rows) == ("land", "purchases", "success", 4)
    assert run.details["partitions"]["0"]["last"] == 2


def test_a_run_resumes_after_the_highest_landed_offset(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send([(2, purchase("u1", 1.0, "2024-05-01T00:00:00Z"))])
    land(settings, registry, "purchases")
    assert land(settings, registry, "purchases").rows == 0

    send([(2, purchase("u2", 2.0, "2024-05-01T01:00:00Z"))])
    again = land(settings, registry, "purchases")

    assert again.rows == 1
    assert [(p, o, u) for p, o, u, *_ in landed_rows(settings, source)] == [
        (2, 0, "u1"),
        (2, 1, "u2"),
    ]


def test_a_bounded_run_stops_after_max_records(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send([(0, purchase(f"u{i}", float(i), "2024-05-01T00:00:00Z")) for i in range(5)])

    first = land(settings, registry, "purchases", max_records=2)
    rest = land(settings, registry, "purchases")

    assert (first.rows, rest.rows) == (2, 3)
    assert [o for _, o, *_ in landed_rows(settings, source)] == [0, 1, 2, 3, 4]


def late_counts(registry: Registry, view: str) -> list[tuple[datetime, datetime, int]]:
    return [(i.start, i.end, i.events) for i in late_intervals(registry, view, 1)]


@pytest.fixture
def published(registry: Registry, source: EventSource, example_repo) -> None:
    """The example views on the test's topic: user_purchases (step 1h, windows up to 30d)
    published for [05-01 00:00, 12:00), merchant_sales (step 1d, up to 7d) for [04-28, 05-01)."""
    registry.apply(example_repo)
    registry.register(source)  # the test's topic instead of the example's
    registry.add_coverage("user_purchases", 1, T0, T0 + 12 * HOUR)
    registry.add_coverage("merchant_sales", 1, T0 - 3 * DAY, T0)


def test_an_event_is_late_for_the_published_steps_it_changes(
    settings: Settings, registry: Registry, published: None, send: Send
) -> None:
    send(
        [
            (0, purchase("u1", 1.0, "2024-05-01T11:59:59Z")),  # changes step 12:00 on: none
            (0, purchase("u1", 1.0, "2024-05-01T12:00:00Z")),
            (1, purchase("u2", 1.0, "2024-05-01T03:00:00Z")),  # changes 04:00 .. 30d later
            (1, purchase("u3", 1.0, "2024-05-01T03:59:59Z")),
            (2, purchase("u4", 1.0, "2024-04-29T10:00:00Z")),  # 04-29 11:00 on; 04-30 on
        ]
    )

    result = land(settings, registry, "purchases")

    assert (result.rows, result.late, result.late_since) == (5, 3, T0 - 2 * DAY + 10 * HOUR)
    assert late_counts(registry, "user_purchases") == [
        (T0, T0 + 12 * HOUR, 1),
        (T0 + 4 * HOUR, T0 + 12 * HOUR, 2),
    ]
    assert late_counts(registry, "merchant_sales") == [(T0 - DAY, T0, 1)]
    assert late_counts(registry, "user_categories") == []  # nothing published


def test_late_events_are_counted_once_when_the_lander_dies_before_its_files(
    settings: Settings, registry: Registry, published: None, send: Send
) -> None:
    send([(0, purchase("u2", 1.0, "2024-05-01T03:00:00Z"))])

    assert run_lander_cli(settings, "purchases", "after_late_events") == -signal.SIGKILL
    assert late_counts(registry, "user_purchases") == [(T0 + 4 * HOUR, T0 + 12 * HOUR, 1)]
    rerun = land(settings, registry, "purchases")

    assert (rerun.rows, rerun.late) == (1, 1)
    assert late_counts(registry, "user_purchases") == [(T0 + 4 * HOUR, T0 + 12 * HOUR, 1)]


def test_a_table_source_or_missing_topic_is_refused(
    settings: Settings, registry: Registry, example_repo
) -> None:
    registry.apply(example_repo)
    registry.register(purchases_on("never_created"))
    with pytest.raises(LandingError, match="source: 'customers' is a table source"):
        land(settings, registry, "customers")
    with pytest.raises(
        LandingError, match="topic: 'never_created' of source 'purchases' not found"
    ):
        land(settings, registry, "purchases")


def test_no_broker_is_one_clear_error(
    settings: Settings, registry: Registry, source: EventSource
) -> None:
    nowhere = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})
    with pytest.raises(
        LandingError, match=r"kafka_bootstrap: no Kafka broker answers at 127\.0\.0\.1:9"
    ):
        land(nowhere, registry, "purchases")
    assert registry.list_runs(kind="land")[0].status == "failed"
