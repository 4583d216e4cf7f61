"""Spark aggregations forced to run as if short of memory, for tests of float order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

PRESSURE = {
    "spark.sql.TungstenAggregate.testFallbackStartsAt": "1,2",
    "spark.sql.objectHashAggregate.sortBased.fallbackThreshold": "1",
}
"""Spark's test settings: a hash aggregate spills its map every two rows and later merges each
group's partial buffers; an object hash aggregate falls back to sorting at once."""


@contextmanager
def aggregation_short_of_memory(spark: SparkSession) -> Iterator[None]:
    """The session's aggregations spill as if short of memory; its settings restored after."""
    before = {key: spark.conf.get(key, None) for key in PRESSURE}
    try:
        for key, value in PRESSURE.items():
            spark.conf.set(key, value)
        yield
    finally:
        for key, value in before.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)
