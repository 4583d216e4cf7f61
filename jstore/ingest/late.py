"""Which published intervals a landed event changes: the lander's test for late events.

The value of a view at step t aggregates the events with t - w <= ts < t, for each window w of
the view. So an event at `ts` changes the values at the steps t with ts < t <= ts + w, that is
from floor(ts, step) + step to floor(ts, step) + max_window (windows are multiples of the step).
Rows are stored only where a value changed from the step before, so the row at the next step,
floor(ts, step) + max_window + step, where the event has left every window, may appear or
vanish too. The affected steps are therefore

    [floor(ts, step) + step, floor(ts, step) + max_window + 2 * step)    (as an interval)

An event is late for a view when that interval meets the view's published coverage; it is
counted once per published piece of it (the interval clipped to each covered interval). Events
whose steps are not published yet are simply computed by the next scheduled compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jstore.durations import floor_to_step
from jstore.model import ResolvedView
from jstore.registry import Registry
from jstore.registry.late import AffectedInterval


def affected_steps(view: ResolvedView, ts: datetime) -> tuple[datetime, datetime]:
    """The interval of steps of `view` whose stored rows an event at `ts` can change."""
    step, reach = view.definition.step, view.definition.max_window
    first = floor_to_step(ts, step) + step
    return first, first + reach + step


@dataclass(frozen=True)
class PublishedView:
    view: ResolvedView
    coverage: list[tuple[datetime, datetime]]


class LateEvents:
    """The current views of one source with their published coverage, read once per run."""

    def __init__(self, views: list[PublishedView]):
        self.views = [v for v in views if v.coverage]

    @classmethod
    def of_source(cls, registry: Registry, source: str) -> LateEvents:
        return cls(
            [
                PublishedView(view, registry.coverage(view.name, view.version))
                for view in registry.list_views()
                if view.definition.source == source
            ]
        )

    def affected(self, ts: datetime) -> list[AffectedInterval]:
        """The published intervals an event at `ts` changes (none: the event is not late)."""
        found = []
        for published in self.views:
            start, end = affected_steps(published.view, ts)
            name, version = published.view.name, published.view.version
            for covered_start, covered_end in published.coverage:
                lo, hi = max(start, covered_start), min(end, covered_end)
                if lo < hi:
                    found.append((name, version, lo, hi))
        return found
