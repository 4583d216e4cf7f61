"""Windowed views: the changed rows of [start, end) as range frames over per-step tiles.

A window `w` at step `t` covers the tiles `t - w <= tile < t`. A tile changes a window's value
only at the step where it enters (`tile + step`) or leaves (`tile + w + step`), so those steps
are the only candidates for a changed row. For each candidate `t` two evaluation points are
added beside the tiles: `t - step` (the value at `t`) and `t - 2 step` (the value at `t - step`).
Every window is one range frame over the ordered points of an entity, `[p - w + step, p]`, so
the value at `t` and the value at `t - step` come out of the same expression over the same kind
of frame: equal sets of tiles give identical values, floats included. Nothing is read back from
storage, and no raw row is scanned per window.

Invariants: points are keyed by (join keys, `__tile`) and unique; the row before a candidate in
its entity's order is its `t - 2 step` point, so `lag` yields the value at `t - step`.
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
            typed(
                window_value(f, view, order.rangeBetween(step - int(f.window.total_seconds()), 0)),
                f,
            )
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
    """(join keys, `__tile` = point, `__candidate`) for the candidate steps `t` in [start, end):
    the point `t - step` (candidate) and `t - 2 step` (its previous value, not a candidate)."""
    offsets = sorted({0, *windows})
    points = F.explode(
        F.array(
            *(
                F.struct(
                    (F.col(TILE) + offset - back).alias("point"),
                    F.lit(back == 0).alias("candidate"),
                )
                for offset in offsets
                for back in (0, step)
            )
        )
    ).alias("p")
    candidate_step = F.col("p.point") + step + F.when(F.col("p.candidate"), 0).otherwise(step)
    return (
        tiles.select(*join_keys, points)
        .where((candidate_step >= start) & (candidate_step < end))
        .groupBy(*join_keys, F.col("p.point").alias(TILE))
        .agg(F.max("p.candidate").alias(CANDIDATE))
    )
