"""Windowed views: the changed rows of [start, end) as range frames over per-step tiles.

A window `w` at step `t` covers the tiles `t - w <= tile < t`. A tile changes a window's value
only at the step where it enters (`tile + step`) or leaves (`tile + w + step`), so those steps
are the only candidates for a changed row, and between two candidates every value stays put.
Every checkpoint `C` in [start, end) (jobs/changes.py) is a candidate too, for the entities with
a tile in `[C - max_window, C)`: the only ones whose value at `C` can be non-empty. The value at
a candidate `t` is evaluated at the point `t - step`; the value at `t - step` is then the value
at the entity's previous candidate, or, for its first candidate in [start, end), the value at
`start - step`, evaluated at one more point per entity (`start - 2 step`).

Every window is one range frame over the ordered points and tiles of an entity,
`[p - w + step, p]`, so a value and the value it is compared with come out of the same
expression over the same kind of frame: equal sets of tiles give identical values, floats
included. Nothing is read back from storage, and no raw row is scanned per window. Cost:
integer totals are linear in the rows (jobs/tiles.py); other partials are merged over their
frame afresh per row: an entity's rows (tiles and points, at most one per step) times the rows
inside the window. Checkpoints add at most one point per entity and checkpoint, found from one
row per entity and checkpoint period with tiles (never all entities times all steps).

Invariants: points are keyed by (join keys, `__tile`) and unique; in an entity's order of
points, the one before a candidate holds the value at `t - step`.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.changes import PREVIOUS, STEP_END, keeps_row, staged_rows, typed
from jobs.tiles import TILE, window_value
from jstore.model import ResolvedView, WindowedFeatureView

CANDIDATE = "__candidate"


def changed_windowed_rows(
    tiles: DataFrame, view: ResolvedView, start: datetime, end: datetime
) -> DataFrame:
    """The staged rows of a windowed view for the steps in [start, end), from its tiles
    (jobs/tiles.py: one row per entity and tile, covering at least the read range)."""
    definition = view.definition
    assert isinstance(definition, WindowedFeatureView)
    step = int(definition.step.total_seconds())
    windows = sorted({int(f.window.total_seconds()) for f in view.features if f.window})
    points = evaluation_points(
        tiles,
        view.join_keys,
        windows,
        step,
        int(definition.checkpoint_period.total_seconds()),
        int(start.timestamp()),
        int(end.timestamp()),
    )
    frame = tiles.join(points, [*view.join_keys, TILE], "full")
    order = Window.partitionBy(*view.join_keys).orderBy(TILE)
    values = frame.select(
        *view.join_keys,
        TILE,
        CANDIDATE,
        *(
            typed(window_value(f, view, order, int(f.window.total_seconds()), step), f)
            for f in view.features
        ),
    ).where(F.col(CANDIDATE).isNotNull())
    previous = [F.lag(f.name).over(order).alias(f"{PREVIOUS}{f.name}") for f in view.features]
    return staged_rows(
        values.select("*", *previous)
        .withColumn(STEP_END, F.col(TILE) + step)
        .where(F.col(CANDIDATE) & keeps_row(view, F.col(STEP_END))),
        view,
    )


def evaluation_points(
    tiles: DataFrame,
    join_keys: list[str],
    windows: list[int],
    step: int,
    period: int,
    start: int,
    end: int,
) -> DataFrame:
    """(join keys, `__tile` = point, `__candidate`): the point `t - step` of every candidate step
    `t` in [start, end) (a tile entering or leaving a window, or a checkpoint), and per entity the
    point `start - 2 step` (the value at `start - step`, not a candidate)."""
    entering_or_leaving = F.explode(
        F.array(*(F.col(TILE) + offset for offset in sorted({0, *windows})))
    ).alias(TILE)
    changes = tiles.select(*join_keys, entering_or_leaving).where(
        (F.col(TILE) + step >= start) & (F.col(TILE) + step < end)
    )
    candidates = (
        changes.unionByName(
            checkpoint_points(tiles, join_keys, max(windows), step, period, start, end)
        )
        .distinct()
        .withColumn(CANDIDATE, F.lit(True))
    )
    before_start = (
        candidates.select(*join_keys)
        .distinct()
        .select(*join_keys, F.lit(start - 2 * step).alias(TILE), F.lit(False).alias(CANDIDATE))
    )
    return candidates.unionByName(before_start)


def checkpoint_points(
    tiles: DataFrame,
    join_keys: list[str],
    max_window: int,
    step: int,
    period: int,
    start: int,
    end: int,
) -> DataFrame:
    """(join keys, `__tile`): the point `C - step` of every checkpoint `C` in [start, end) for the
    entities with a tile in `[C - max_window, C)`, i.e. `tile < C <= tile + max_window`.

    Tiles are first reduced to the latest one per entity and period: the checkpoints after the
    tiles of a period `[b, b + period)` run from `b + period` to the latest tile + max_window.
    """
    first = -(-start // period) * period
    last = (end - 1) // period * period
    period_start = F.col(TILE) - F.pmod(F.col(TILE), F.lit(period))
    latest = (
        tiles.where((F.col(TILE) >= first - max_window) & (F.col(TILE) < last))
        .groupBy(*join_keys, period_start.alias("__period"))
        .agg(F.max(TILE).alias("__latest"))
    )
    reach = F.col("__latest") + max_window
    low = F.greatest(F.col("__period") + period, F.lit(first))
    high = F.least(reach - F.pmod(reach, F.lit(period)), F.lit(last))
    points = F.explode(F.sequence(low - step, high - step, F.lit(period))).alias(TILE)
    return latest.where(low <= high).select(*join_keys, points)
