"""The row rule and the shape of a staged row, shared by windowed and SQL views.

A row for (entity, t) is kept when any feature differs from the entity's value at `t - step`,
compared with null-safe equality (null equals null) and floats exactly as computed; and at a
checkpoint (`t` a multiple of the view's `checkpoint_period`, lcm(step, 1 day), from the
epoch) whenever the value at `t` is not the empty-window value, changed or not. So the value at
any T is the latest row in [floor(T, period), T]: a reader never needs a row older than the last
checkpoint, and an entity whose value was stable since before an interval still has its row.
Both parts depend on (entity, t) alone, so any split of an interval gives the same rows.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.landing import SPARK_TYPES
from jstore.model import FeatureSpec, ResolvedView
from jstore.staging import staged_columns

STEP_END = "__t"
"""A step `t` as seconds since the epoch: the row's `feature_ts`."""
PREVIOUS = "__prev_"
"""The prefix of a feature's value at `t - step`."""


def keeps_row(view: ResolvedView, step_end: Column) -> Column:
    """True for a row the rule keeps, given the step `t` (epoch seconds), each feature's value
    at `t` (its own name) and at `t - step` (`__prev_<feature>`)."""
    names = [f.name for f in view.features]
    changed = reduce(
        lambda a, b: a | b, (~F.col(n).eqNullSafe(F.col(f"{PREVIOUS}{n}")) for n in names)
    )
    period = int(view.definition.checkpoint_period.total_seconds())
    at_checkpoint = F.pmod(step_end, F.lit(period)) == 0
    return changed | (at_checkpoint & ~is_empty(view.features))


def is_empty(features: list[FeatureSpec]) -> Column:
    """True when every feature holds its empty-window value (count, sum, count_distinct 0,
    others null; a SQL view's features all null): the value of an absent row."""
    return reduce(
        lambda a, b: a & b, (F.col(f.name).eqNullSafe(F.lit(f.empty_value)) for f in features)
    )


def typed(value: Column, spec: FeatureSpec) -> Column:
    """A feature's value in the Spark type of its dtype, named as the feature (before comparing,
    so that values equal in the stored type are equal)."""
    return value.cast(SPARK_TYPES[spec.dtype]).alias(spec.name)


def staged_rows(values: DataFrame, view: ResolvedView) -> DataFrame:
    """The staged columns (`jstore.staging.staged_columns`): join keys, `feature_ts` (UTC), the
    features in the view's order."""
    feature_ts = F.timestamp_seconds(F.col(STEP_END))
    return values.withColumn("feature_ts", feature_ts).select(*staged_columns(view))
