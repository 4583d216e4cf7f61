"""The change-only rule and the shape of a staged row, shared by windowed and SQL views.

A row for (entity, t) is kept when any feature differs from the entity's value at `t - step`,
compared with null-safe equality (null equals null) and floats exactly as computed.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.landing import SPARK_TYPES
from jstore.model import FeatureSpec, ResolvedView

STEP_END = "__t"
"""A step `t` as seconds since the epoch: the row's `feature_ts`."""


def differs(current: list[Column], previous: list[Column]) -> Column:
    """True when any current value is not null-safe equal to its previous value."""
    return reduce(
        lambda a, b: a | b, (~c.eqNullSafe(p) for c, p in zip(current, previous, strict=True))
    )


def typed(value: Column, spec: FeatureSpec) -> Column:
    """A feature's value in the Spark type of its dtype, named as the feature (before comparing,
    so that values equal in the stored type are equal)."""
    return value.cast(SPARK_TYPES[spec.dtype]).alias(spec.name)


def staged_rows(values: DataFrame, view: ResolvedView) -> DataFrame:
    """The staged columns: join keys, `feature_ts` (UTC), the features in the view's order."""
    return values.select(
        *view.join_keys,
        F.timestamp_seconds(F.col(STEP_END)).alias("feature_ts"),
        *(f.name for f in view.features),
    )
