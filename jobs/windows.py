"""Windowed views: the changed rows of [start, end) from per-step tiles, in two sorted passes.

A window `w` at step `t` covers the tiles `t - w <= tile < t`, i.e. the value at `t` is the value
"at the point" `p = t - step`, over the tiles in `[p - w + step, p]`. A tile changes window `w`
only at the point where it enters (`p = tile`) or leaves (`p = tile + w`); between two such
changes of `w` its value stays put. So:

1. **Over tiles** (one sort of an entity's tiles): every tile row gets, for each window `w`, the
   value where it enters (its frame `[tile - w + step, tile]`) and where it leaves (its frame
   `[tile + step, tile + w]`). Frames hold tiles only, so a sliding frame re-merges tens of
   tiles, never the evaluation points.
2. **Over points** (one more sort, inside the same partitions, no shuffle): each tile row
   becomes its change points (`tile`, `tile + w` for every `w`, each carrying the values of the
   windows it changes), plus the checkpoints it keeps non-empty (jobs/changes.py). Per entity
   and in point order, the value of window `w` at any point is the one carried by its latest
   `w`-change (`last`, nulls ignored): exact, because between two `w`-changes no tile enters or
   leaves `w`. The value at `t - step` is the one carried by the rows before the point's (no
   change lies between two consecutive points), so both come out of one sorted pass; of several
   rows on one point, the first is kept.

Every value is a merge of one window's tiles in tile order (jobs/tiles.py), so it is a function
of that set of tiles only, floats included: the value at a point, the value it is compared with,
and the values of any split of the interval or of a run over stored tiles are bit-identical.

Only the latest change per window before `start - step` is kept from the lookback: the value at
`start - step` needs nothing older. Invariants: tiles are unique per (join keys, `__tile`);
several change points may fall on the same point, and carry identical values there.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.changes import PREVIOUS, STEP_END, keeps_row, staged_rows, typed
from jobs.tiles import TILE, Partial, finished, merged_over, partials_of, running_total
from jstore.model import FeatureSpec, ResolvedView, WindowedFeatureView

POINT = "__p"
"""A point `t - step` (epoch seconds): the last tile a value at step `t` covers."""
NEXT = "__next_p"
"""The same kind of point of the entity's next tile: where this change is superseded."""
NEXT_TILE = "__next_tile"
LOOKBACK_POINT = "__previous_point"


def changed_windowed_rows(
    tiles: DataFrame, view: ResolvedView, start: datetime, end: datetime
) -> DataFrame:
    """The staged rows of a windowed view for the steps in [start, end), from its tiles
    (jobs/tiles.py: one row per entity and tile, covering at least the read range)."""
    definition = view.definition
    assert isinstance(definition, WindowedFeatureView)
    step = int(definition.step.total_seconds())
    period = int(definition.checkpoint_period.total_seconds())
    first, stop = int(start.timestamp()) - step, int(end.timestamp()) - step
    by_window = windows_of(view)
    keys = view.join_keys

    at_tiles = values_over_tiles(tiles, view, by_window, step)
    points = (
        at_tiles.select(*keys, F.explode(change_points(by_window, step, period, first, stop)))
        .select(*keys, f"col.{POINT}", f"col.{NEXT}", *(f"col.{_name(w)}" for w in by_window))
        .where(
            (F.col(POINT) < stop)
            & ((F.col(POINT) >= first) | F.col(NEXT).isNull() | (F.col(NEXT) >= first))
        )
    )

    by_point = Window.partitionBy(*keys).orderBy(POINT)
    through_point = by_point.rangeBetween(Window.unboundedPreceding, 0)
    before_row = by_point.rowsBetween(Window.unboundedPreceding, -1)
    latest = points.select(
        *keys,
        POINT,
        F.lag(POINT).over(by_point).alias(LOOKBACK_POINT),
        *(
            F.last(_name(w), ignorenulls=True).over(frame).alias(f"{prefix}{_name(w)}")
            for w in by_window
            for prefix, frame in (("", through_point), (PREVIOUS, before_row))
        ),
    )
    compared = latest.select(
        *keys,
        POINT,
        LOOKBACK_POINT,
        *(
            typed(_value(f, prefix + _name(w)), f).alias(prefix + f.name)
            for prefix in ("", PREVIOUS)
            for w, specs in by_window.items()
            for f in specs
        ),
    )
    kept = compared.withColumn(STEP_END, F.col(POINT) + step).where(
        (F.col(POINT) >= first)
        & ~F.col(LOOKBACK_POINT).eqNullSafe(F.col(POINT))
        & keeps_row(view, F.col(STEP_END))
    )
    return staged_rows(kept, view)


def values_over_tiles(
    tiles: DataFrame, view: ResolvedView, by_window: dict[int, list[FeatureSpec]], step: int
) -> DataFrame:
    """Per tile row: the join keys, `__tile`, the entity's next tile, and for each window `w` a
    struct of its features where the tile enters (`[tile - w + step, tile]`) and where it leaves
    (`[tile + step, tile + w]`). Each frame is computed once (Spark does not share equal window
    expressions), then the features are finished from them."""
    order = Window.partitionBy(*view.join_keys).orderBy(TILE)
    frames: dict[str, Column] = {}

    def total(partial: Partial, through: int) -> Column:
        name = f"__{partial.name}_through_{through}".replace("-", "m")
        frames.setdefault(name, running_total(partial, order, through).alias(name))
        return F.col(name)

    def merged(partial: Partial, low: int, high: int) -> Column:
        if partial.exact_total:
            return total(partial, high) - total(partial, low - step)
        name = f"__{partial.name}_{low}_{high}".replace("-", "m")
        frames.setdefault(name, merged_over(partial, order, low, high).alias(name))
        return F.col(name)

    structs = []
    for w, specs in by_window.items():
        for offset in (0, w):
            low, high = offset - w + step, offset
            merged_partials = {
                p.name: merged(p, low, high) for spec in specs for p in partials_of(spec, view)
            }
            values = (typed(finished(spec, view, merged_partials), spec) for spec in specs)
            structs.append(F.struct(*values).alias(_name(w, offset)))
    with_frames = tiles.select(
        *view.join_keys, TILE, F.lead(TILE).over(order).alias(NEXT_TILE), *frames.values()
    )
    return with_frames.select(*view.join_keys, TILE, NEXT_TILE, *structs)


def windows_of(view: ResolvedView) -> dict[int, list[FeatureSpec]]:
    """The view's features by window (seconds), windows ascending."""
    by_window: dict[int, list[FeatureSpec]] = {}
    for spec in view.features:
        by_window.setdefault(int(spec.window.total_seconds()), []).append(spec)
    return dict(sorted(by_window.items()))


def change_points(
    by_window: dict[int, list[FeatureSpec]], step: int, period: int, first: int, stop: int
) -> Column:
    """Per tile row, an array of (`__p`, `__next_p`, one struct per window or null): the point
    where the tile enters every window, the point where it leaves each, and the points `C - step`
    of the checkpoints `C` in [first + step, stop + step) whose value it makes non-empty and no
    later tile of the entity does (`tile < C <= min(tile + max window, next tile)`)."""
    tile, next_tile = F.col(TILE), F.col(NEXT_TILE)
    nothing = {w: F.when(F.lit(False), F.col(_name(w, 0))) for w in by_window}

    def point(at: Column, following: Column, carried: dict[int, Column]) -> Column:
        windows = [carried.get(w, nothing[w]).alias(_name(w)) for w in by_window]
        return F.struct(at.alias(POINT), following.alias(NEXT), *windows)

    entering = point(tile, next_tile, {w: F.col(_name(w, 0)) for w in by_window})
    leaving = [point(tile + w, next_tile + w, {w: F.col(_name(w, w))}) for w in by_window]
    reach = F.least(tile + max(by_window), F.coalesce(next_tile, tile + max(by_window)))
    low = F.greatest(tile - F.pmod(tile, F.lit(period)) + period, F.lit(first + step))
    high = F.least(reach, F.lit(stop + step - 1))
    high = high - F.pmod(high, F.lit(period))
    checkpoints = F.when(low <= high, F.sequence(low, high, F.lit(period))).otherwise(
        F.array().cast("array<bigint>")
    )
    no_next = F.lit(None).cast("bigint")
    return F.concat(
        F.array(entering, *leaving),
        F.transform(checkpoints, lambda c: point(c - step, no_next, {})),
    )


def _value(spec: FeatureSpec, carried: str) -> Column:
    """The feature from its window's carried struct (its empty value when nothing was carried:
    no tile of the entity before)."""
    return F.coalesce(F.col(carried).getField(spec.name), F.lit(spec.empty_value))


def _name(window: int, offset: int | None = None) -> str:
    """The column of a window's values: where a tile enters it (offset 0), where it leaves it
    (offset `window`), or, per change point, as carried (no offset)."""
    return f"__w{window}" if offset is None else f"__w{window}_at_{offset}"
