"""Windowed views: the changed rows of [start, end) as range frames over per-step tiles.

A window `w` at step `t` covers the tiles `t - w <= tile < t`. A tile changes a window's value
only at the step where it enters (`tile + step`) or leaves (`tile + w + step`), so those steps
are the only candidates for a changed row, and between two candidates every value stays put.
The value at a candidate `t` is evaluated at the point `t - step`; the value at `t - step` is
then the value at the entity's previous candidate, or, for its first candidate in [start, end),
the value at `start - step`, evaluated at one more point per entity (`start - 2 step`).

Every window is one range frame over the ordered points and tiles of an entity,
`[p - w + step, p]`, so a value and the value it is compared with come out of the same
expression over the same kind of frame: equal sets of tiles give identical values, floats
included. Nothing is read back from storage, and no raw row is scanned per window. Cost:
integer totals are linear in the rows (jobs/tiles.py); other partials are merged over their
frame afresh per row: an entity's rows (tiles and points, at most one per step) times the rows
inside the window.

Invariants: points are keyed by (join keys, `__tile`) and unique; in an entity's order of
points, the one before a candidate holds the value at `t - step`.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.changes import STEP_END, differs, staged_rows, typed
from jobs.tiles import TILE, build_tiles, window_value
from jstore.model import ResolvedView, WindowedFeatureView

CANDIDATE = "__candidate"


def changed_windowed_rows(
    events: DataFrame, view: ResolvedView, start: datetime, end: datetime
) -> DataFrame:
    """The staged rows of a windowed view for the steps in [start, end)."""
    definition = view.view
    assert isinstance(definition, WindowedFeatureView)
    step = int(definition.step.total_seconds())
    tiles = build_tiles(events, view, step)
    windows = sorted({int(f.window.total_seconds()) for f in view.features if f.window})
    points = evaluation_points(
        tiles, view.join_keys, windows, step, int(start.timestamp()), int(end.timestamp())
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
    names = [f.name for f in view.features]
    previous = [F.lag(name).over(order) for name in names]
    return staged_rows(
        values.select("*", *(p.alias(f"__prev_{n}") for p, n in zip(previous, names, strict=True)))
        .where(
            F.col(CANDIDATE)
            & differs([F.col(n) for n in names], [F.col(f"__prev_{n}") for n in names])
        )
        .withColumn(STEP_END, F.col(TILE) + step),
        view,
    )


def evaluation_points(
    tiles: DataFrame, join_keys: list[str], windows: list[int], step: int, start: int, end: int
) -> DataFrame:
    """(join keys, `__tile` = point, `__candidate`): the point `t - step` of every candidate step
    `t` in [start, end), and per entity the point `start - 2 step` (the value at `start - step`,
    not a candidate)."""
    entering_or_leaving = F.explode(
        F.array(*(F.col(TILE) + offset for offset in sorted({0, *windows})))
    ).alias(TILE)
    candidates = (
        tiles.select(*join_keys, entering_or_leaving)
        .where((F.col(TILE) + step >= start) & (F.col(TILE) + step < end))
        .distinct()
        .withColumn(CANDIDATE, F.lit(True))
    )
    before_start = (
        candidates.select(*join_keys)
        .distinct()
        .select(*join_keys, F.lit(start - 2 * step).alias(TILE), F.lit(False).alias(CANDIDATE))
    )
    return candidates.unionByName(before_start)
