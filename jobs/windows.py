"""Windowed views: the changed rows of [start, end) from per-step tiles, in two sorted passes.

A window `w` at step `t` covers the tiles `t - w <= tile < t`, i.e. the value at `t` is the value
"at the point" `p = t - step`, over the tiles in `[p - w + step, p]`. A tile changes window `w`
only at the point where it enters (`p = tile`) or leaves (`p = tile + w`); between two such
changes of `w` its value stays put. So:

1. **Over tiles** (one sort of an entity's tiles): every tile row gets, for each window `w`, the
   value where it enters (its frame `[tile - w + step, tile]`) and where it leaves (its frame
   `[tile + step, tile + w]`). Frames hold tiles only, so a sliding frame re-merges tens of
   tiles, never the evaluation points. A one-step window needs no frame: it enters with the
   tile's own partials, and leaves empty (its leave row is kept only when no tile follows at
   once, see 2).
2. **Over points** (one more sort, inside the same partitions, no shuffle): each tile row
   becomes its change points (`tile`, `tile + w` for every `w`, each carrying the values of the
   windows it changes), plus the checkpoints it keeps non-empty (jobs/changes.py). A leave point
   that is the entity's next tile is not a row of its own: that tile's enter row carries every
   window's value there. Per entity and in point order, the value of window `w` at any point is
   the one carried by its latest `w`-change (`last`, nulls ignored): exact, because between two
   `w`-changes no tile enters or leaves `w`. The value at `t - step` is the value at the
   previous point (`lag`, in a second window operator over the same order: no other sort), as
   no change lies between two consecutive points; of several rows on one point, the first is
   kept.

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
KIND = "__kind"
"""Which change a point row is: 0 a tile entering, `i` its leaving the `i`-th window (1-based,
ascending), beyond them a checkpoint."""
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
    points = change_points(at_tiles, keys, by_window, step, period, first, stop)

    by_point = Window.partitionBy(*keys).orderBy(POINT)
    through_point = by_point.rangeBetween(Window.unboundedPreceding, 0)
    latest = points.select(
        *keys,
        POINT,
        F.lag(POINT).over(by_point).alias(LOOKBACK_POINT),
        *(
            F.last(_name(w), ignorenulls=True).over(through_point).alias(_name(w))
            for w in by_window
        ),
    )
    with_previous = latest.select(
        *keys,
        POINT,
        LOOKBACK_POINT,
        *(_name(w) for w in by_window),
        *(F.lag(_name(w)).over(by_point).alias(PREVIOUS + _name(w)) for w in by_window),
    )
    compared = with_previous.where(
        (F.col(POINT) >= first) & ~F.col(LOOKBACK_POINT).eqNullSafe(F.col(POINT))
    ).select(
        *keys,
        (F.col(POINT) + step).alias(STEP_END),
        *(
            _value(f, prefix + _name(w)).alias(prefix + f.name)
            for prefix in ("", PREVIOUS)
            for w, specs in by_window.items()
            for f in specs
        ),
    )
    return staged_rows(compared.where(keeps_row(view, F.col(STEP_END))), view)


def values_over_tiles(
    tiles: DataFrame, view: ResolvedView, by_window: dict[int, list[FeatureSpec]], step: int
) -> DataFrame:
    """Per tile row: the join keys, `__tile`, the entity's next tile, and for each window `w` a
    struct of its features where the tile enters (`[tile - w + step, tile]`) and where it leaves
    (`[tile + step, tile + w]`; for `w = step` empty, see `change_points`).

    Each distinct frame is one window expression (Spark does not share equal ones). Integer
    totals are differences of running totals, which never re-merge a frame: a sliding frame
    re-merges every tile in it for each row, so it holds only the partials that need it (float
    sums, min, max, last, sketches)."""
    order = Window.partitionBy(*view.join_keys).orderBy(TILE)
    frames: dict[str, Column] = {}

    def frame(name: str, column: Column) -> Column:
        name = name.replace("-", "m")
        frames.setdefault(name, column.alias(name))
        return F.col(name)

    def merged(partial: Partial, low: int, high: int) -> Column:
        if low == high == step:
            return F.when(F.lit(False), F.col(partial.name))
        if low == high == 0 and partial.merge_of_one_is_itself:
            return F.col(partial.name)
        if partial.exact_total:
            through = [
                frame(f"__{partial.name}_through_{t}", running_total(partial, order, t))
                for t in (high, low - step)
            ]
            return through[0] - through[1]
        return frame(f"__{partial.name}_{low}_{high}", merged_over(partial, order, low, high))

    structs = []
    for w, specs in by_window.items():
        partials = {p.name: p for spec in specs for p in partials_of(spec, view)}
        for offset in (0, w):
            low, high = offset - w + step, offset
            merged_partials = {n: merged(p, low, high) for n, p in partials.items()}
            values = (typed(finished(spec, view, merged_partials), spec) for spec in specs)
            structs.append(F.struct(*values).alias(_name(w, offset)))
    partial_columns = {p.name for spec in view.features for p in partials_of(spec, view)}
    with_frames = tiles.select(
        *view.join_keys,
        TILE,
        *sorted(partial_columns),
        F.lead(TILE).over(order).alias(NEXT_TILE),
        *frames.values(),
    )
    return with_frames.select(*view.join_keys, TILE, NEXT_TILE, *structs)


def windows_of(view: ResolvedView) -> dict[int, list[FeatureSpec]]:
    """The view's features by window (seconds), windows ascending."""
    by_window: dict[int, list[FeatureSpec]] = {}
    for spec in view.features:
        by_window.setdefault(int(spec.window.total_seconds()), []).append(spec)
    return dict(sorted(by_window.items()))


def change_points(
    at_tiles: DataFrame,
    keys: list[str],
    by_window: dict[int, list[FeatureSpec]],
    step: int,
    period: int,
    first: int,
    stop: int,
) -> DataFrame:
    """Per tile row, the point rows (join keys, `__p`, one struct column per window, null where
    the row does not change that window) in [first, stop), and from before `first` the latest
    of each kind: the point where the tile enters every window, the point where it leaves each
    (unless the entity's next tile enters there), and the points `C - step` of the checkpoints
    `C` in [first + step, stop + step) whose value it makes non-empty and no later tile of the
    entity does (`tile < C <= min(tile + max window, next tile)`)."""
    tile, next_tile = F.col(TILE), F.col(NEXT_TILE)
    windows = list(by_window)
    reach = F.least(tile + max(windows), F.coalesce(next_tile, tile + max(windows)))
    low = F.greatest(tile - F.pmod(tile, F.lit(period)) + period, F.lit(first + step))
    high = F.least(reach, F.lit(stop + step - 1))
    high = high - F.pmod(high, F.lit(period))
    checkpoints = F.when(low <= high, F.sequence(low - step, high - step, F.lit(period))).otherwise(
        F.array().cast("array<bigint>")
    )
    exploded = at_tiles.select(
        *keys,
        NEXT_TILE,
        *(_name(w, offset) for w in windows for offset in (0, w)),
        F.posexplode(F.concat(F.array(tile, *(tile + w for w in windows)), checkpoints)).alias(
            KIND, POINT
        ),
    )
    kind, point = F.col(KIND), F.col(POINT)
    # where the same kind of change of the entity's next tile lies (none for a checkpoint)
    following = F.when(kind == 0, next_tile)
    for i, w in enumerate(windows, 1):
        following = following.when(kind == i, next_tile + w)
    kept = (
        (point < stop)
        & ((point >= first) | following.isNull() | (following >= first))
        & ~next_tile.eqNullSafe(point)
    )
    carried = {
        w: F.when(kind == 0, F.col(_name(w, 0))).when(kind == i, F.col(_name(w, w)))
        for i, w in enumerate(windows, 1)
    }
    return exploded.where(kept).select(*keys, POINT, *(carried[w].alias(_name(w)) for w in windows))


def _value(spec: FeatureSpec, carried: str) -> Column:
    """The feature from its window's carried struct (its empty value when nothing was carried:
    no tile of the entity before)."""
    return typed(F.coalesce(F.col(carried).getField(spec.name), F.lit(spec.empty_value)), spec)


def _name(window: int, offset: int | None = None) -> str:
    """The column of a window's values: where a tile enters it (offset 0), where it leaves it
    (offset `window`), or, per change point, as carried (no offset)."""
    return f"__w{window}" if offset is None else f"__w{window}_at_{offset}"
