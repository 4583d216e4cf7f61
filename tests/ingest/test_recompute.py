"""Late events are not forgotten: an event landed after its interval was published is counted
in the registry, and `recompute` republishes exactly the intervals it changed (real Kafka,
MongoDB, PostgreSQL and Spark)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jstore.config import Settings
from jstore.ingest.lander import land
from jstore.late_events import recompute
from jstore.model import EventSource
from jstore.offline import OfflineStore
from jstore.pipeline import compute
from jstore.registry import Registry
from jstore.registry.late import late_intervals
from jstore.request import ComputeRequest
from tests.ingest.conftest import Send, purchase

T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def stored(settings: Settings, registry: Registry, user: str) -> list[tuple]:
    with OfflineStore(settings) as store:
        rows = store.history(registry.get_view("user_purchases"), {"user_id": user})
    return [
        (r["feature_ts"], r["count_1h"], r["amount_sum_1h"], r["amount_sum_1d"], r["_run_id"])
        for r in rows
    ]


@pytest.mark.e2e
@pytest.mark.spark
def test_a_late_event_is_counted_and_recomputed_into_the_published_interval(
    settings: Settings, registry: Registry, source: EventSource, send: Send, example_repo
) -> None:
    settings = settings.model_copy(update={"spark_master": "local[2]"})
    registry.apply(example_repo)
    registry.register(source)  # the test's topic instead of the example's
    send([(0, purchase("u1", 10.0, "2024-05-01T00:10:00Z"))])
    land(settings, registry, "purchases")
    request = ComputeRequest.of(registry.get_view("user_purchases"), T0, T0 + 4 * HOUR)
    first = compute(settings, registry, request).run_id
    assert stored(settings, registry, "u1") == [
        (T0 + HOUR, 1, 10.0, 10.0, first),
        (T0 + 2 * HOUR, 0, 0.0, 10.0, first),
    ]

    send(
        [
            (1, purchase("u1", 5.0, "2024-05-01T01:30:00Z")),  # steps 02:00 .. 30d 03:00: late
            (1, purchase("u1", 7.0, "2024-05-01T04:30:00Z")),  # steps 05:00 on: not published
        ]
    )
    landed = land(settings, registry, "purchases")

    assert (landed.rows, landed.late) == (2, 1)
    assert [(i.start, i.end, i.events) for i in late_intervals(registry, "user_purchases", 1)] == [
        (T0 + 2 * HOUR, T0 + 4 * HOUR, 1)
    ]

    runs = recompute(settings, registry, ["user_purchases"])

    assert [(r.start, r.end, r.late_events, r.status) for r in runs] == [
        (T0 + 2 * HOUR, T0 + 4 * HOUR, 1, "success")
    ]
    again = runs[0].run_id
    assert stored(settings, registry, "u1") == [
        (T0 + HOUR, 1, 10.0, 10.0, first),
        (T0 + 2 * HOUR, 1, 5.0, 15.0, again),
        (T0 + 3 * HOUR, 0, 0.0, 15.0, again),
    ]
    assert late_intervals(registry, "user_purchases", 1) == []
    assert recompute(settings, registry) == []
