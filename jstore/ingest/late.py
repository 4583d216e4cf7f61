"""Which published intervals a landed event changes: the lander's test for late events.

The value of a view at step t aggregates the events with t - w <= ts < t, for each window w of
the view. So an event at `ts` changes the values at the steps t with ts < t <= ts + w, that is
from floor(ts, step) + step to floor(ts, step) + max_window (windows are multiples of the step).
Rows are stored only where a value changed from the step before, so the row at the next step,
floor(ts, step) + max_window + step, where the event has left every window, may appear or
vanish too. The affected steps are therefore

    [floor(ts, step) + step, floor(ts, step) + max_window + 2 * step)    (as an interval)

An event is late for a view when that interval meets what the view has published, or is
publishing: its coverage, and the intervals of its compute runs still in flight (recorded in
the last `IN_FLIGHT`, not failed, not yet covered). A compute lists the landing zone when it
starts, so an event landed while it runs would otherwise be missing from what it publishes and
never be counted. It is counted once per piece (the interval clipped to each of those
intervals). Events whose steps nobody published or is publishing are computed by the next
compute of their steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jstore.durations import floor_to_step
from jstore.model import ResolvedView
from jstore.registry import Registry
from jstore.registry.late import AffectedInterval

Interval = tuple[datetime, datetime]
ONE_MICROSECOND = timedelta(microseconds=1)
"""The resolution of event times: [ts, ts + 1 µs) holds one event time."""

IN_FLIGHT = timedelta(days=1)
"""A compute run recorded this recently that has not failed may still publish its interval
(staging, validation and publishing are separate runs; a killed one stays `running`)."""


def affected_steps(view: ResolvedView, ts: datetime) -> Interval:
    """The interval of steps of `view` whose stored rows an event at `ts` can change."""
    step, reach = view.definition.step, view.definition.max_window
    first = floor_to_step(ts, step) + step
    return first, first + reach + step


def clip(interval: Interval, intervals: list[Interval]) -> list[Interval]:
    """The non-empty pieces of `interval` inside each of the (disjoint, sorted) `intervals`."""
    pieces = [(max(interval[0], s), min(interval[1], e)) for s, e in intervals]
    return [(s, e) for s, e in pieces if s < e]


def subtract(intervals: list[Interval], minus: list[Interval]) -> list[Interval]:
    """The parts of `intervals` outside every interval of `minus`, merged and sorted."""
    left: list[Interval] = []
    for start, end in merge(intervals):
        cursor = start
        for s, e in merge(minus):
            if s >= end:
                break
            if e <= cursor:
                continue
            if s > cursor:
                left.append((cursor, s))
            cursor = e
        if cursor < end:
            left.append((cursor, end))
    return left


def merge(intervals: list[Interval]) -> list[Interval]:
    """Overlapping or touching intervals joined, sorted."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def in_flight(
    registry: Registry, view: ResolvedView, now: datetime | None = None
) -> list[Interval]:
    """Intervals of `view`'s compute runs that may still publish, outside its coverage."""
    since = (now or datetime.now(UTC)) - IN_FLIGHT
    runs = registry.list_runs(kind="compute", subject=view.name, version=view.version, limit=1000)
    flying = [
        (run.start, run.end)
        for run in runs
        if run.status != "failed" and run.start and run.end and run.started_at >= since
    ]
    return subtract(flying, registry.coverage(view.name, view.version))


@dataclass(frozen=True)
class PublishedView:
    view: ResolvedView
    coverage: list[Interval]
    """The published intervals (disjoint, sorted)."""
    in_flight: list[Interval] = field(default_factory=list)
    """Intervals of compute runs that may still publish, outside the coverage."""


class LateEvents:
    """The current views of one source with what they published or are publishing."""

    def __init__(self, views: list[PublishedView]):
        self.views = [v for v in views if v.coverage or v.in_flight]
        self.horizon = max(
            (end for v in self.views for _, end in v.coverage + v.in_flight), default=None
        )
        """Events at or after it change nothing published: their first affected step is later."""

    @classmethod
    def of_source(cls, registry: Registry, source: str) -> LateEvents:
        return cls(
            [
                PublishedView(
                    view, registry.coverage(view.name, view.version), in_flight(registry, view)
                )
                for view in registry.list_views()
                if view.definition.source == source
            ]
        )

    def affected_range(self, start: datetime, end: datetime) -> list[AffectedInterval]:
        """The published (or publishing) intervals that events anywhere in [start, end) change:
        what re-extracting that interval of a table can change (rows added, updated, removed)."""
        found: list[AffectedInterval] = []
        for published in self.views:
            first = affected_steps(published.view, start)[0]
            last = affected_steps(published.view, end - ONE_MICROSECOND)[1]
            name, version = published.view.name, published.view.version
            for lo, hi in clip((first, last), published.coverage) + clip(
                (first, last), published.in_flight
            ):
                found.append((name, version, lo, hi))
        return found

    def affected(self, ts: datetime) -> list[AffectedInterval]:
        """The published (or publishing) intervals an event at `ts` changes; none: not late."""
        if self.horizon is None or ts >= self.horizon:
            return []
        return self.affected_range(ts, ts + ONE_MICROSECOND)
