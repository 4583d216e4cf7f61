"""Per-step tiles of mergeable partial aggregates, and how a window merges and finishes them.

A tile is one entity's events in one step `[tile, tile + step)`. Every function of a windowed
view is split into partials that are computed once per tile and merged over a window of tiles
(Chronon's prepare / merge / finalize, with Spark's native aggregates as the algebra):

| function       | partial per tile                 | merge      | finalize                   |
| -------------- | -------------------------------- | ---------- | -------------------------- |
| count          | rows (or non-null values)        | sum        | 0 when empty               |
| sum            | sum of non-null values           | sum        | 0 when empty               |
| avg            | sum, count of non-null values    | sum, sum   | sum / count, null if empty |
| min, max       | min, max of non-null values      | min, max   | null when empty            |
| last           | greatest (event time, partition, | max        | its value; null when empty |
|                | offset, value) of non-null values|            |                            |
| count_distinct | HLL sketch (lgConfigK 12)        | union      | estimate; 0 when empty     |

Invariants: a partial's merge is associative and commutative, so a window's value depends on
its set of tiles only, never on how the interval was split; nulls in a column are skipped by
every function but count without a column (which counts rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from jstore.model import FeatureSpec, ResolvedView

TILE = "__tile"
"""The tile's start as seconds since the epoch (a multiple of the step)."""

HLL_LG_CONFIG_K = 12
HLL_DTYPES = frozenset({"string", "int64"})
"""Column types `hll_sketch_agg` takes as they are; others are sketched as their text."""


@dataclass(frozen=True)
class Partial:
    name: str
    tile: Column
    """The aggregate over one tile's rows."""
    merge: Callable[[Column], Column]
    """The aggregate of the tile column over a window of tiles."""
    exact_total: bool = False
    """An integer sum: a window's total is exact as a difference of two running totals."""
    merge_of_one_is_itself: bool = True
    """Merging a single tile gives its partial, bit for bit (sum, min, max; not a sketch union),
    so a one-step window needs no frame."""


def partials_of(spec: FeatureSpec, view: ResolvedView) -> list[Partial]:
    """The partials one feature needs, named so that features share them."""
    column = F.col(spec.column) if spec.column else None
    match spec.function, column:
        case "count", None:
            return [Partial("__rows", F.count(F.lit(1)), F.sum, exact_total=True)]
        case "count", _:
            return [_count(spec.column)]
        case "sum", _:
            return [_sum(spec.column, view)]
        case "avg", _:
            return [_sum(spec.column, view), _count(spec.column)]
        case "min", _:
            return [Partial(f"__min_{spec.column}", F.min(column), F.min)]
        case "max", _:
            return [Partial(f"__max_{spec.column}", F.max(column), F.max)]
        case "last", _:
            return [Partial(f"__last_{spec.column}", _latest(column, view), F.max)]
        case "count_distinct", _:
            dtype = view.source.dtype_of(spec.column)
            value = column if dtype in HLL_DTYPES else column.cast("string")
            sketch = F.hll_sketch_agg(value, HLL_LG_CONFIG_K)
            return [
                Partial(
                    f"__hll_{spec.column}", sketch, F.hll_union_agg, merge_of_one_is_itself=False
                )
            ]
    raise ValueError(f"{spec.name}: a windowed feature needs a function, not {spec.function!r}")


def tile_partials(view: ResolvedView) -> list[Partial]:
    """Every partial of the view, each once."""
    unique: dict[str, Partial] = {}
    for spec in view.features:
        for partial in partials_of(spec, view):
            unique.setdefault(partial.name, partial)
    return list(unique.values())


def tile_start(view: ResolvedView, step_seconds: int) -> Column:
    """The start of the tile holding each event (epoch seconds, a multiple of the step)."""
    seconds = F.unix_seconds(F.col(view.source.timestamp_name))
    return seconds - F.pmod(seconds, F.lit(step_seconds))


def tiles_in_order(events: DataFrame, view: ResolvedView, order: list[str]) -> DataFrame:
    """One row per (join keys, `__tile`) of `events` (which hold `__tile`): the partials, each
    aggregated over the tile's rows one row at a time in `order`.

    A window over each tile, not a `groupBy`: a hash aggregation that runs short of memory
    spills its map and later merges the partial buffers of one group, so a tile's float sum
    would be added in another order and change its last bits (tests/compute/test_tile_build.py
    forces that fallback). A window aggregates its partition's rows in their sorted order,
    whatever the memory; Spark adds no sort when the rows are already sorted by the join keys,
    `__tile`, then `order`."""
    keys = view.join_keys
    rows_of_tile = Window.partitionBy(*keys, TILE).orderBy(*order)
    whole_tile = rows_of_tile.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    first = "__first_of_tile"
    per_row = events.select(
        *keys,
        TILE,
        (F.row_number().over(rows_of_tile) == 1).alias(first),
        *(p.tile.over(whole_tile).alias(p.name) for p in tile_partials(view)),
    )
    return per_row.where(F.col(first)).drop(first)


def running_total(partial: Partial, order: WindowSpec, through: int) -> Column:
    """An integer partial summed over every tile up to `tile + through` (seconds) of each tile
    row of `order`, 0 when there is none. Spark grows an unbounded-preceding frame row by row,
    so a window's exact total, the difference of two running totals, is linear in the rows."""
    total = F.sum(F.col(partial.name)).over(order.rangeBetween(Window.unboundedPreceding, through))
    return F.coalesce(total, F.lit(0))


def merged_over(partial: Partial, order: WindowSpec, low: int, high: int) -> Column:
    """A partial merged over the tiles from `tile + low` to `tile + high` (seconds, both
    included) of each tile row of `order`, in tile order: equal sets of tiles give identical
    values, floats included. Spark re-merges this frame for each row, so it costs the tiles
    inside it."""
    return partial.merge(F.col(partial.name)).over(order.rangeBetween(low, high))


def finished(spec: FeatureSpec, view: ResolvedView, merged: Mapping[str, Column]) -> Column:
    """The feature from its partials merged over a window (`merged`: by partial name), with the
    empty-window values of DESIGN.md."""
    values = [merged[p.name] for p in partials_of(spec, view)]
    match spec.function:
        case "count" | "sum":
            (total,) = values
            return F.coalesce(total, F.lit(0))
        case "avg":
            total, count = values
            return F.when(count > 0, total.cast("double") / count)
        case "last":
            (latest,) = values
            return latest.getField("value")
        case "count_distinct":
            (sketch,) = values
            return F.coalesce(F.hll_sketch_estimate(sketch), F.lit(0))
    (value,) = values
    return value


def _count(column: str) -> Partial:
    return Partial(f"__count_{column}", F.count(F.col(column)), F.sum, exact_total=True)


def _sum(column: str, view: ResolvedView) -> Partial:
    """Sums of integers are exact totals; sums of floats are summed over each window afresh,
    so that the same tiles always give the same value."""
    integers = view.source.dtype_of(column) == "int64"
    return Partial(f"__sum_{column}", F.sum(F.col(column)), F.sum, exact_total=integers)


def _latest(column: Column, view: ResolvedView) -> Column:
    """The greatest (event time, _partition, _offset, value) among the non-null values.

    Ties on event time are broken by the Kafka partition, then the offset, then the value itself,
    so the result never depends on the order Spark reads the rows in.
    """
    ordered = F.struct(
        F.col(view.source.timestamp_name).alias("ts"),
        F.col("_partition").alias("partition"),
        F.col("_offset").alias("offset"),
        column.alias("value"),
    )
    return F.max(F.when(column.isNotNull(), ordered))
