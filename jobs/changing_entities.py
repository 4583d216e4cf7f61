"""Only the entities that can have a row in [start, end) go into the window computation.

An entity's rows depend on its own tiles alone, and it can have a row at step `t` only where
jobs/windows.py has a candidate: a tile entering or leaving a window (`tile + step` or
`tile + window + step` in [start, end)), or a checkpoint `C` in [start, end) with a tile in
`[C - max_window, C)`. Every other entity has no row there, so dropping its tiles (a semi-join on
the keys) changes no row, and an hourly run over 30 days of stored tiles windows only the
entities active in its hour and at its windows' far edges (at a checkpoint: every entity with a
tile within the longest window, as it must).

A run whose candidate tiles cover its whole read range but the last step skips the semi-join
(`drops_no_entity`): it could only drop entities whose only tiles fall in that last step (one
tile each, no row), at the cost of one more pass over the tiles and a Spark job of its own
(about a second of a small run). That is an interval at least as long as the longest window
(every tile enters or leaves the longest window inside it), and any interval holding a
checkpoint near enough to its start, as a daily run does with windows of up to a month: at a
checkpoint every entity with a tile within the longest window changes.
"""

from __future__ import annotations

from datetime import datetime
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.tiles import TILE
from jstore.model import ResolvedView, WindowedFeatureView


def tiles_of_changing_entities(
    tiles: DataFrame, view: ResolvedView, start: datetime, end: datetime
) -> DataFrame:
    """The tiles of the entities with a candidate step in [start, end), all of their tiles."""
    if drops_no_entity(view, start, end):
        return tiles
    _, period, windows = _steps(view)
    s, e = int(start.timestamp()), int(end.timestamp())
    tile = F.col(TILE)
    # plain ranges on `__tile`, so Spark skips the stored tiles' row groups outside them
    conditions = [(tile >= lo) & (tile < hi) for lo, hi in _enter_and_leave_ranges(view, s, e)]
    first, last = -(-s // period) * period, (e - 1) // period * period
    if first <= last:
        next_checkpoint = tile - F.pmod(tile, F.lit(period)) + period
        reach = F.least(tile + max(windows), F.lit(last))
        near = (tile >= first - max(windows)) & (tile < last)
        conditions.append(near & (F.greatest(next_checkpoint, F.lit(first)) <= reach))
    changing = tiles.where(reduce(lambda a, b: a | b, conditions)).select(*view.join_keys)
    return tiles.join(changing.distinct(), view.join_keys, "left_semi")


def drops_no_entity(view: ResolvedView, start: datetime, end: datetime) -> bool:
    """Whether the candidate tiles of [start, end) cover its read range,
    `[start - step - max_window, end - step)`: the tiles entering or leaving a window, and for
    each checkpoint `C` in [start, end) those in `[C - max_window, C)` (all of which it keeps)."""
    step, period, windows = _steps(view)
    s, e = int(start.timestamp()), int(end.timestamp())
    checkpoints = range(-(-s // period) * period, e, period)
    ranges = [*_enter_and_leave_ranges(view, s, e), *((c - max(windows), c) for c in checkpoints)]
    covered = s - step - max(windows)
    for lo, hi in sorted(ranges):
        if lo > covered:
            return False
        covered = max(covered, hi)
    return covered >= e - step


def _enter_and_leave_ranges(view: ResolvedView, s: int, e: int) -> list[tuple[int, int]]:
    """The tile-time ranges `[s - offset - step, e - offset - step)` of the tiles entering
    (offset 0) or leaving (offset `w`) a window at a step of [s, e)."""
    step, _, windows = _steps(view)
    return [(s - offset - step, e - offset - step) for offset in sorted({0, *windows})]


def _steps(view: ResolvedView) -> tuple[int, int, set[int]]:
    """The view's step, checkpoint period and windows, in seconds."""
    definition = view.definition
    assert isinstance(definition, WindowedFeatureView)
    step = int(definition.step.total_seconds())
    period = int(definition.checkpoint_period.total_seconds())
    return step, period, {int(f.window.total_seconds()) for f in view.features if f.window}
