"""Reading a source's events from the landing zone, for one read range, duplicates removed.

Layout (docs/architecture.md): `<lake>/landing/<source>/event_date=YYYY-MM-DD/*.parquet`, with
the source's schema columns plus `_topic`, `_partition`, `_offset`, `_ingested_at`.

Invariants of the returned frame:
- only rows with `read_start <= event time < read_end` and with every join key present;
- a Kafka record (`_topic`, `_partition`, `_offset`) appears once, however often it was
  landed; rows with a null `_offset` (table sources) are all kept;
- only the `event_date` partitions that the read range touches are listed and read; files whose
  names start with `.` or `_` (a lander's temp files, `_SUCCESS`) are skipped by Spark itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import reduce
from pathlib import Path

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.lake_files import FileEntry, LakeFiles
from jstore import lake
from jstore.arrow_types import ARROW_TYPES
from jstore.config import Settings
from jstore.lake import landing_dir
from jstore.model import EventSource, TableSource

SPARK_TYPES = {
    "string": T.StringType(),
    "int64": T.LongType(),
    "float64": T.DoubleType(),
    "bool": T.BooleanType(),
    "timestamp": T.TimestampType(),
}
SPARK_OF_ARROW = {
    pa.string(): T.StringType(),
    pa.int32(): T.IntegerType(),
    pa.int64(): T.LongType(),
    pa.float64(): T.DoubleType(),
    pa.bool_(): T.BooleanType(),
    ARROW_TYPES["timestamp"]: T.TimestampType(),
}
RECORD_ID = ["_topic", "_partition", "_offset"]


def landing_schema(source: EventSource | TableSource) -> T.StructType:
    """The landing zone's schema (`jstore.lake.landing_schema`, its one definition) in Spark's
    form."""
    return T.StructType(
        [T.StructField(f.name, SPARK_OF_ARROW[f.type]) for f in lake.landing_schema(source)]
    )


def partition_days(read_start: datetime, read_end: datetime) -> list[str]:
    """The `event_date` values holding events in [read_start, read_end)."""
    first, last = read_start.date(), (read_end - timedelta(microseconds=1)).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def source_landing_path(settings: Settings, source: str) -> str:
    """`<lake>/landing/<source>`, as Spark names it."""
    return landing_dir(settings, source).spark_uri


def partition_paths(landing_path: str, read_start: datetime, read_end: datetime) -> list[str]:
    """Partition folders to read; on a local lake only those that exist (Spark fails on others)."""
    days = partition_days(read_start, read_end)
    if "://" in landing_path and not landing_path.startswith("file://"):
        return [f"{landing_path}/event_date={{{','.join(days)}}}"]
    root = Path(landing_path.removeprefix("file://"))
    return [str(p) for d in days if (p := root / f"event_date={d}").is_dir()]


def read_events(
    spark: SparkSession,
    landing_path: str,
    source: EventSource | TableSource,
    join_keys: list[str],
    read_start: datetime,
    read_end: datetime,
) -> DataFrame:
    """The source's events in [read_start, read_end) that have every join key, each Kafka record
    once (by its record id; the tile build drops copies in its own sort instead: first_copies)."""
    ts = F.col(source.timestamp_name)
    in_range = (ts >= F.lit(read_start)) & (ts < F.lit(read_end))
    paths = partition_paths(landing_path, read_start, read_end)
    events = landed_rows(spark, paths, source, join_keys, in_range)
    from_tables = events.where(F.col("_offset").isNull())
    from_kafka = events.where(F.col("_offset").isNotNull()).dropDuplicates(RECORD_ID)
    return from_tables.unionByName(from_kafka)


def landed_rows(
    spark: SparkSession,
    paths: list[str],
    source: EventSource | TableSource,
    join_keys: list[str],
    where: Column,
) -> DataFrame:
    """The rows of these landed files or partition folders that match `where` and have every
    join key, a Kafka record as often as it was landed. Spark pushes `where` down to the files'
    row-group statistics, so a filter on the event time skips the row groups (and files)
    outside it."""
    schema = landing_schema(source)
    if paths:
        raw = spark.read.schema(schema).parquet(*paths).select(*schema.fieldNames())
    else:
        raw = spark.createDataFrame([], schema)
    for key in join_keys:
        where = where & F.col(key).isNotNull()
    return raw.where(where)


def first_copies(rows: DataFrame, keys: list[str], order: list[str]) -> DataFrame:
    """`rows` with each Kafka record once: the rows are partitioned by `keys` and sorted within
    partitions by `keys` then `order`, which starts with the event time and holds `RECORD_ID`,
    so the copies of a record (identical rows) are neighbours, and a row is dropped when the
    one before it is the same record. A streaming pass over the sorted rows (the window's order
    is the sort's, so Spark adds no shuffle and no sort), where `dropDuplicates` would shuffle
    every event by record id and sort it. Table rows (null `_offset`) are all kept."""
    before = Window.partitionBy(*keys).orderBy(*order)
    same = reduce(
        lambda a, b: a & b, (F.lag(c).over(before).eqNullSafe(F.col(c)) for c in RECORD_ID)
    )
    copy = "__copy"
    marked = rows.withColumn(copy, F.col("_offset").isNotNull() & same)
    return marked.where(~F.col(copy)).drop(copy)


def landed_files(lake: LakeFiles, source: str, days: list[str]) -> list[FileEntry]:
    """The landed files of `source` in these `event_date` partitions (temp files skipped)."""
    return [f for day in days for f in lake.list_files(f"landing/{source}/event_date={day}")]
