"""Which published steps a late event changes, how late intervals merge into recompute runs, and
what `recompute` does with a run that fails (no Spark here: see test_recompute.py for that)."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta

from jstore.config import Settings
from jstore.ingest.late import LateEvents, PublishedView, affected_steps
from jstore.late_events import merged_runs, recompute
from jstore.registry import Registry
from jstore.registry.late import LateInterval, late_intervals, record_late_events
from tests.ingest.test_ingest_cli import JSTORE

T0 = datetime(2024, 5, 1, tzinfo=UTC)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


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


def interval(start_h: int, end_h: int) -> LateInterval:
    return LateInterval(
        view="v", version=1, start=T0 + start_h * HOUR, end=T0 + end_h * HOUR, events=1
    )


def test_overlapping_or_touching_intervals_merge_into_one_run() -> None:
    runs = merged_runs([interval(6, 8), interval(1, 3), interval(0, 2), interval(3, 4)])

    assert [[(i.start.hour, i.end.hour) for i in run] for run in runs] == [
        [(0, 2), (1, 3), (3, 4)],
        [(6, 8)],
    ]


def test_a_failed_recompute_keeps_its_late_events_counted(
    settings: Settings, registry: Registry, example_repo
) -> None:
    registry.apply(example_repo)
    unaligned = ("user_purchases", 1, T0 + 30 * MINUTE, T0 + 2 * HOUR)
    record_late_events(registry, "t-0-7", {unaligned: 3})

    runs = recompute(settings, registry)

    assert [(r.view, r.start, r.end, r.late_events, r.status) for r in runs] == [
        ("user_purchases", T0 + 30 * MINUTE, T0 + 2 * HOUR, 3, "failed")
    ]
    assert runs[0].error
    assert [(i.start, i.events) for i in late_intervals(registry, "user_purchases", 1)] == [
        (T0 + 30 * MINUTE, 3)
    ]


def test_the_recompute_command(settings: Settings, registry: Registry, example_repo) -> None:
    registry.apply(example_repo)
    env = {**os.environ, "JSTORE_MONGO_DB": settings.mongo_db, "JSTORE_LAKE_URI": settings.lake_uri}

    nothing = subprocess.run([str(JSTORE), "recompute"], env=env, capture_output=True, text=True)
    unknown = subprocess.run(
        [str(JSTORE), "recompute", "nosuch"], env=env, capture_output=True, text=True
    )

    assert (nothing.returncode, nothing.stdout) == (0, "no late events to recompute\n")
    assert (unknown.returncode, unknown.stderr) == (2, "jstore: unknown feature view 'nosuch'\n")
