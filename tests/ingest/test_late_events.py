"""Which published steps a late event changes, how late intervals merge into recompute runs, and
what `recompute` does with a run that fails (no Spark here: see test_recompute.py for that)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta

from jstore.config import Settings
from jstore.ingest.lander import land
from jstore.ingest.late import LateEvents, PublishedView, affected_steps, clip, merge, subtract
from jstore.late_events import recompute
from jstore.model import EventSource
from jstore.registry import Registry, RunRecord
from jstore.registry.late import late_intervals, record_late_events
from tests.ingest.conftest import Send, purchase
from tests.ingest.test_ingest_cli import JSTORE

T0 = datetime(2024, 5, 1, tzinfo=UTC)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def late_counts(registry: Registry) -> list[tuple[datetime, datetime, int]]:
    return [(i.start, i.end, i.events) for i in late_intervals(registry, "user_purchases", 1)]


def test_an_event_changes_the_steps_whose_windows_hold_it_and_the_step_after(
    registry: Registry, example_repo
) -> None:
    registry.apply(example_repo)
    hourly_30d = registry.get_view("user_purchases")  # step 1h, windows up to 30d
    daily_7d = registry.get_view("merchant_sales")  # step 1d, windows up to 7d

    # the value at t holds t - w <= ts < t: from the next step on, until the step after the
    # largest window, where the event has left every window and a change row may appear
    assert affected_steps(hourly_30d, T0 + 90 * MINUTE) == (T0 + 2 * HOUR, T0 + 30 * DAY + 3 * HOUR)
    assert affected_steps(hourly_30d, T0 + HOUR) == (T0 + 2 * HOUR, T0 + 30 * DAY + 3 * HOUR)
    assert affected_steps(daily_7d, T0 + 23 * HOUR) == (T0 + DAY, T0 + 9 * DAY)


def test_the_affected_steps_are_clipped_to_each_published_interval(
    registry: Registry, example_repo
) -> None:
    registry.apply(example_repo)
    view = registry.get_view("merchant_sales")
    late = LateEvents([PublishedView(view, [(T0, T0 + 2 * DAY), (T0 + 5 * DAY, T0 + 20 * DAY)])])

    assert late.affected(T0 + 12 * HOUR) == [
        ("merchant_sales", 1, T0 + DAY, T0 + 2 * DAY),
        ("merchant_sales", 1, T0 + 5 * DAY, T0 + 9 * DAY),
    ]
    assert late.affected(T0 + 20 * DAY) == []  # its steps are not published yet
    assert late.affected(T0 - 9 * DAY) == []  # it left every window before the coverage


def test_interval_arithmetic() -> None:
    assert merge([(6, 8), (1, 3), (0, 2), (3, 4)]) == [(0, 4), (6, 8)]  # touching ones too
    assert clip((1, 9), [(0, 2), (4, 5), (8, 12)]) == [(1, 2), (4, 5), (8, 9)]
    assert subtract([(0, 10)], [(2, 3), (5, 6), (9, 12)]) == [(0, 2), (3, 5), (6, 9)]
    assert subtract([(0, 4), (6, 10)], [(3, 7)]) == [(0, 3), (7, 10)]
    assert subtract([(0, 10)], [(10, 12)]) == [(0, 10)]
    assert subtract([(0, 10)], [(-5, 20)]) == []


def test_a_failed_recompute_keeps_its_late_events_counted(
    settings: Settings, registry: Registry, example_repo
) -> None:
    registry.apply(example_repo)
    registry.add_coverage("user_purchases", 1, T0, T0 + 4 * HOUR)
    unaligned = ("user_purchases", 1, T0 + 30 * MINUTE, T0 + 2 * HOUR)
    record_late_events(registry, "t-0-7", {unaligned: 3})

    runs = recompute(settings, registry)

    assert [(r.view, r.start, r.end, r.late_events, r.status) for r in runs] == [
        ("user_purchases", T0 + 30 * MINUTE, T0 + 2 * HOUR, 3, "failed")
    ]
    assert runs[0].error
    assert late_counts(registry) == [(T0 + 30 * MINUTE, T0 + 2 * HOUR, 3)]


def test_an_event_is_late_for_a_compute_in_flight_and_stays_counted_until_it_published(
    settings: Settings, registry: Registry, source: EventSource, send: Send, example_repo
) -> None:
    registry.apply(example_repo)
    registry.register(source)  # the test's topic instead of the example's
    staging = RunRecord(
        run_id="compute-1",
        kind="compute",
        subject="user_purchases",
        version=1,
        start=T0,
        end=T0 + 4 * HOUR,
    )
    registry.record_run(staging)  # it listed the landing zone before the event landed
    send([(0, purchase("u1", 5.0, "2024-05-01T01:30:00Z"))])

    landed = land(settings, registry, "purchases")

    assert landed.late == 1
    counted = [(T0 + 2 * HOUR, T0 + 4 * HOUR, 1)]
    assert late_counts(registry) == counted
    assert recompute(settings, registry) == []  # nothing published to recompute yet
    assert late_counts(registry) == counted  # but the compute in flight may publish without it

    registry.finish_run("compute-1", "failed", error="the quality gate failed")
    assert recompute(settings, registry) == []
    assert late_counts(registry) == []  # whatever publishes it later reads the event


def test_the_recompute_command(settings: Settings, registry: Registry, example_repo) -> None:
    registry.apply(example_repo)
    env = {**os.environ, "JSTORE_MONGO_DB": settings.mongo_db, "JSTORE_LAKE_URI": settings.lake_uri}

    nothing = subprocess.run([str(JSTORE), "recompute"], env=env, capture_output=True, text=True)
    unknown = subprocess.run(
        [str(JSTORE), "recompute", "nosuch"], env=env, capture_output=True, text=True
    )

    assert (nothing.returncode, nothing.stdout) == (0, "no late events to recompute\n")
    assert (unknown.returncode, unknown.stderr) == (2, "jstore: unknown feature view 'nosuch'\n")
