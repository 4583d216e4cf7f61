"""`jstore recompute`: republish the published intervals that late events changed.

The lander counts, per view version, the published intervals that events landed after their
publish change (jstore/ingest/late.py, jstore/registry/late.py). Recompute reads them for the
current version of each view, clips them to the view's coverage now, merges the pieces into as
few ranged runs as possible (overlapping or touching pieces together), and runs each through
the whole pipeline (`jstore.pipeline.compute`: stage, validate, publish, which replaces the
interval in the offline store). The pieces are steps of the view by construction (affected
steps clipped to the coverage, whose ends are steps).

A counted interval is forgotten only when every published piece of it was recomputed
successfully, and no compute in flight (jstore/ingest/late.py `in_flight`) covers any of it: a
compute that listed the landing zone before the event landed must publish first. So a failed
run stays counted (it is reported and does not stop the other runs), and an interval nobody
published or is publishing is forgotten without a compute: whatever publishes it later reads
the event. Only the documents read before the runs are deleted: events landed meanwhile stay
counted for the next recompute.

The documents are read while the source's lease is held (`settled_landing`), so each belongs to
a batch whose files are final: compute cannot miss an event whose count it clears. Documents of
a version that is no longer current are left alone (that version is not computed).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from jstore.config import Settings
from jstore.ingest.late import Interval, clip, in_flight, merge, subtract
from jstore.ingest.recovery import settled_landing
from jstore.model import ResolvedView
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
        with settled_landing(settings, registry, view.definition.source):
            intervals = late_intervals(registry, view.name, view.version)
        done += _recompute_view(settings, registry, view, intervals)
    return done


def _recompute_view(
    settings: Settings, registry: Registry, view: ResolvedView, intervals: list[LateInterval]
) -> list[RecomputeRun]:
    """Recompute the published pieces of `intervals` in ranged runs; then forget each interval
    whose pieces all succeeded and that no compute in flight may still publish without them."""
    coverage = registry.coverage(view.name, view.version)
    flying = in_flight(registry, view)
    pieces = {id(i): clip((i.start, i.end), coverage) for i in intervals}
    runs = [
        _recompute_run(
            settings,
            registry,
            view,
            span,
            [i for i in intervals if clip(span, pieces[id(i)])],
        )
        for span in merge([p for ps in pieces.values() for p in ps])
    ]
    succeeded = [(r.start, r.end) for r in runs if r.status == "success"]
    clear_late_events(
        registry,
        [
            i
            for i in intervals
            if not subtract(pieces[id(i)], succeeded) and not clip((i.start, i.end), flying)
        ],
    )
    return runs


def _recompute_run(
    settings: Settings,
    registry: Registry,
    view: ResolvedView,
    span: Interval,
    counted: list[LateInterval],
) -> RecomputeRun:
    from jstore.pipeline import compute
    from jstore.request import ComputeRequest

    start, end = span
    outcome = RecomputeRun(
        view=view.name,
        version=view.version,
        start=start,
        end=end,
        late_events=sum(i.events for i in counted),
        intervals=len(counted),
        status="failed",
    )
    try:
        request = ComputeRequest.of(view, start, end)
        result = compute(settings, registry, request)
    except Exception as e:
        log.exception("recompute of %s [%s, %s) failed", view.name, start, end)
        outcome.error = f"{type(e).__name__}: {e}"
        return outcome
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
