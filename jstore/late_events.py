"""`jstore recompute`: republish the published intervals that late events changed.

The lander counts, per view version, the published intervals that events landed after their
publish change (jstore/ingest/late.py, jstore/registry/late.py). Recompute reads them for the
current version of each view, merges overlapping or touching intervals into as few ranged runs
as possible, and runs each through the whole pipeline (`jstore.pipeline.compute`: stage,
validate, publish, which replaces the interval in the offline store). The intervals are steps of
the view by construction (affected steps clipped to the published coverage, whose ends are
steps). A run's late-event documents are deleted only after its compute succeeded, and only
those read before it started: events landed meanwhile stay counted for the next recompute. A
failed run stays counted too, is reported, and does not stop the other runs.

The late-event documents are read while the source's lock is held (`settled_landing`), so each
one belongs to a batch whose files are final: compute cannot miss an event whose count it clears.
Documents of a version that is no longer current are left alone (that version is not computed).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from jstore.config import Settings
from jstore.ingest.recovery import settled_landing
from jstore.registry import Registry
from jstore.registry.late import (
    LateInterval,
    clear_late_events,
    late_intervals,
    views_with_late_events,
)

log = logging.getLogger(__name__)


class RecomputeFailed(RuntimeError):
    """At least one recompute run failed; the message names each with its error."""


class RecomputeRun(BaseModel):
    """One ranged recompute of a view: the merged late intervals it republished."""

    view: str
    version: int
    start: datetime
    end: datetime
    late_events: int
    intervals: int
    """How many counted intervals it merged."""
    status: str
    """`success` or `failed`."""
    run_id: str | None = None
    published_rows: int | None = None
    error: str | None = None


def merged_runs(intervals: list[LateInterval]) -> list[list[LateInterval]]:
    """Late intervals grouped into ranged runs: overlapping or touching intervals together."""
    runs: list[list[LateInterval]] = []
    for interval in sorted(intervals, key=lambda i: (i.start, i.end)):
        if runs and interval.start <= max(i.end for i in runs[-1]):
            runs[-1].append(interval)
        else:
            runs.append([interval])
    return runs


def recompute(
    settings: Settings, registry: Registry, views: list[str] | None = None
) -> list[RecomputeRun]:
    """Recompute and republish the late intervals of `views` (default: every view that has
    any), current versions only; see the module docstring."""
    resolved = [registry.get_view(name) for name in views] if views else None
    if resolved is None:
        current = {v.name: v for v in registry.list_views()}
        resolved = [
            current[name]
            for name, version in views_with_late_events(registry)
            if name in current and current[name].version == version
        ]
    done: list[RecomputeRun] = []
    for view in resolved:
        with settled_landing(settings, view.definition.source):
            intervals = late_intervals(registry, view.name, view.version)
        for run in merged_runs(intervals):
            done.append(_recompute_run(settings, registry, view.name, view.version, run))
    return done


def _recompute_run(
    settings: Settings, registry: Registry, view: str, version: int, run: list[LateInterval]
) -> RecomputeRun:
    from jstore.pipeline import compute
    from jstore.request import ComputeRequest

    start, end = run[0].start, max(i.end for i in run)
    outcome = RecomputeRun(
        view=view,
        version=version,
        start=start,
        end=end,
        late_events=sum(i.events for i in run),
        intervals=len(run),
        status="failed",
    )
    try:
        request = ComputeRequest.resolve(registry, view, start, end, version=version)
        result = compute(settings, registry, request)
    except Exception as e:
        log.exception("recompute of %s [%s, %s) failed", view, start, end)
        outcome.error = f"{type(e).__name__}: {e}"
        return outcome
    clear_late_events(registry, run)
    outcome.status, outcome.run_id = "success", result.run_id
    outcome.published_rows = result.published_rows
    return outcome


def recompute_task(settings: Settings) -> dict[str, Any]:
    """The land DAG's `recompute` task: every view's late intervals; raises RecomputeFailed
    naming each failed run after trying them all."""
    with Registry(settings) as registry:
        runs = recompute(settings, registry)
    failed = [r for r in runs if r.status == "failed"]
    if failed:
        raise RecomputeFailed(
            "; ".join(
                f"{r.view} [{r.start.isoformat()}, {r.end.isoformat()}): {r.error}" for r in failed
            )
        )
    return {"runs": [r.model_dump(mode="json") for r in runs]}
