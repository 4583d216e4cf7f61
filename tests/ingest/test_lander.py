"""The lander: what lands where, resume after the highest landed offset, bounded runs."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from jstore.config import Settings
from jstore.ingest.lander import LandingError, land
from jstore.ingest.landing import read_landing
from jstore.lake import landing_dir
from jstore.model import EventSource
from jstore.registry import Registry
from tests.ingest.conftest import Send, purchase, purchases_on


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


def test_events_older_than_the_published_coverage_are_counted_late(
    settings: Settings, registry: Registry, source: EventSource, send: Send, example_repo
) -> None:
    registry.apply(example_repo)
    registry.register(source)  # the test's topic instead of the example's
    view = registry.get_view("user_purchases")
    registry.add_coverage(
        view.name,
        view.version,
        datetime(2024, 5, 1, tzinfo=UTC),
        datetime(2024, 5, 1, 12, tzinfo=UTC),
    )
    send(
        [
            (0, purchase("u1", 1.0, "2024-05-01T11:59:59Z")),
            (0, purchase("u1", 1.0, "2024-05-01T12:00:00Z")),
            (1, purchase("u2", 1.0, "2024-05-01T03:00:00Z")),
        ]
    )

    result = land(settings, registry, "purchases")

    assert (result.rows, result.late) == (3, 2)
    assert result.watermark == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert result.late_since == datetime(2024, 5, 1, 3, tzinfo=UTC)


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
