"""Spark job: a training set, the point-in-time join of entity rows with published features.

    spark-submit jobs/export_training_set.py --request <lake>/exports/<run>/_request.json

The request (jstore/export_spark.py) carries the resolved views, the features in order, each
view's published coverage and which tables exist: the job never opens the registry. Settings
(the offline database) come from the JSTORE_* environment.

Semantics are the default engine's (jstore/offline/pit_join.py): every entity row kept, in
order, its columns unchanged; per view, the latest stored row with C(T) <= feature_ts <= T
(C(T): T floored to the view's checkpoint period), the empty-window values when there is none,
null (counted) where [C(T), T] is not inside the view's published coverage.

How, per view, with Spark's own operators (nothing is collected to the driver):
- the view's rows are read by JDBC, split on `feature_ts` into ranges read in parallel, and
  only within [min C(T), max T] of the entity rows;
- entity rows and stored rows are unioned and partitioned by (join keys, checkpoint period):
  the period bounds the rows an entity row may use, so no range condition is needed. Sorted by
  time (a stored row before an entity row of the same time: a row stamped exactly T counts),
  `last(struct of the features, ignorenulls)` over the rows up to the current one is the
  latest stored row; the entity rows are kept, the stored rows dropped.
The entity rows' position in their Parquet file (`_metadata.row_index`) orders the output.
"""

from __future__ import annotations

import jobs.installed_pyspark  # noqa: F401  first: pyspark from the installed package, not a zip

# isort: split
import argparse
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.extract_table import jdbc_options
from jobs.landing import SPARK_TYPES
from jobs.spark import spark_session
from jstore.config import Settings
from jstore.errors import InputError
from jstore.export_spark import ExportOutcome, ExportRequest, replace_folder
from jstore.lake_fs import location
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.pit_join import EVENT_TIMESTAMP, _group_by_view, _ViewPart, output_column
from jstore.offline.tables import table_id

ROW = "__jstore_row"
TIME = "__jstore_t"
PERIOD = "__jstore_c"
KIND = "__jstore_kind"
MATCH = "__jstore_match"
STORED_ROW, ENTITY_ROW = 0, 1
JDBC_PARTITIONS_PER_CORE = 2


def key_column(i: int) -> str:
    return f"__jstore_k{i}"


def read_entity_rows(spark: SparkSession, path: str) -> DataFrame:
    """The entity rows with their position in the file (ROW) and their time (TIME, UTC)."""
    rows = spark.read.parquet(path).withColumn(ROW, F.col("_metadata.row_index"))
    raw = rows[EVENT_TIMESTAMP] if EVENT_TIMESTAMP in rows.columns else F.lit(None)
    kind = rows.schema[EVENT_TIMESTAMP].dataType if EVENT_TIMESTAMP in rows.columns else None
    if isinstance(kind, T.StringType):
        time = F.try_to_timestamp(F.trim(raw))
    else:
        time = raw.cast(T.TimestampType())
    return rows.withColumn(TIME, time)


def check_entity_rows(
    rows: DataFrame, keys: dict[str, str], parts: list[_ViewPart], coverage: dict
) -> tuple[int, dict[str, int], tuple]:
    """One pass over the entity rows: refuse a missing or unreadable time or key (naming the
    first such row, as the default engine does), count them and the uncovered rows per view,
    and find the earliest checkpoint and latest time asked (the bounds of the JDBC reads)."""
    if EVENT_TIMESTAMP not in rows.columns:
        raise InputError(f"{EVENT_TIMESTAMP}: missing column in the entity rows")
    raw = F.col(EVENT_TIMESTAMP)
    checks = [
        F.count(F.lit(1)).alias("rows"),
        F.min(F.when(raw.isNull(), F.col(ROW))).alias("no_time"),
        F.min(F.when(raw.isNotNull() & F.col(TIME).isNull(), F.col(ROW))).alias("bad_time"),
        F.max(micros(F.col(TIME))).alias("last"),
    ]
    for i, (key, dtype) in enumerate(keys.items()):
        bad = F.col(key).isNotNull() & F.col(key).try_cast(SPARK_TYPES[dtype]).isNull()
        checks.append(F.min(F.when(bad, F.col(ROW))).alias(f"bad_key{i}"))
    for i, part in enumerate(parts):
        uncovered = ~covered(part.view, coverage.get(part.view.table, []))
        checks.append(F.sum(F.when(uncovered, 1).otherwise(0)).alias(f"uncovered{i}"))
        checks.append(F.min(checkpoint(F.col(TIME), part.view)).alias(f"since{i}"))
    found = rows.agg(*checks).first()
    if found["no_time"] is not None:
        raise InputError(f"{EVENT_TIMESTAMP}: row {found['no_time']} has no timestamp")
    if found["bad_time"] is not None:
        raise InputError(
            f"{EVENT_TIMESTAMP}: not ISO-8601 timestamps like 2024-05-01T10:00:00Z "
            f"(row {found['bad_time']})"
        )
    for i, (key, dtype) in enumerate(keys.items()):
        if found[f"bad_key{i}"] is not None:
            raise InputError(f"{key}: values are not {dtype} (row {found[f'bad_key{i}']})")
    uncovered = {part.view.table: int(found[f"uncovered{i}"] or 0) for i, part in enumerate(parts)}
    since = {part.view.table: found[f"since{i}"] for i, part in enumerate(parts)}
    return found["rows"], uncovered, (since, found["last"])


def micros(ts: Column) -> Column:
    return F.unix_micros(ts)


def checkpoint(ts: Column, view: ResolvedView) -> Column:
    """C(T) in microseconds since the epoch."""
    period = int(view.definition.checkpoint_period.total_seconds()) * 1_000_000
    us = micros(ts)
    return us - F.pmod(us, F.lit(period))


def covered(view: ResolvedView, intervals: list) -> Column:
    """Whether [C(T), T] lies inside one published interval."""
    since, time = checkpoint(F.col(TIME), view), micros(F.col(TIME))
    inside = F.lit(False)
    for start, end in intervals:
        start_us, end_us = (int(ts.timestamp() * 1_000_000) for ts in (start, end))
        inside = inside | ((since >= start_us) & (time < end_us))
    return inside


def read_stored(
    spark: SparkSession,
    settings: Settings,
    view: ResolvedView,
    features: list[FeatureSpec],
    low_us: int,
    high_us: int,
) -> DataFrame:
    """The view's rows with low <= feature_ts <= high, read by JDBC in parallel ranges of
    feature_ts."""
    columns = ", ".join(f'"{c}"' for c in [*view.join_keys, "feature_ts"]) + "".join(
        f', "{spec.name}"' for spec in features
    )
    table = table_id(settings.offline_schema, view).as_string(None)
    low, high = (
        f"TIMESTAMPTZ 'epoch' + {us} * INTERVAL '1 microsecond'" for us in (low_us, high_us)
    )
    query = f"(SELECT {columns} FROM {table} WHERE feature_ts BETWEEN {low} AND {high}) stored"
    partitions = spark.sparkContext.defaultParallelism * JDBC_PARTITIONS_PER_CORE
    return (
        spark.read.format("jdbc")
        .options(**jdbc_options(settings))
        .option("dbtable", query)
        .option("partitionColumn", "feature_ts")
        .option("lowerBound", spark_timestamp(low_us))
        .option("upperBound", spark_timestamp(high_us))
        .option("numPartitions", partitions)
        .option("fetchsize", 10_000)
        .load()
    )


def spark_timestamp(us: int) -> str:
    """A JDBC partition bound as Spark parses it (in the session's time zone, UTC)."""
    return (datetime(1970, 1, 1) + timedelta(microseconds=us)).isoformat(sep=" ")


def join_view(
    rows: DataFrame, stored: DataFrame | None, part: _ViewPart, intervals: list
) -> DataFrame:
    """The entity rows with the view's features appended (see the module docstring)."""
    view = part.view
    keys = [key_column(i) for i in range(len(view.join_keys))]
    asked = rows.select(
        "*",
        *(
            F.col(k).cast(SPARK_TYPES[view.key_dtypes[k]]).alias(c)
            for k, c in zip(view.join_keys, keys, strict=True)
        ),
        checkpoint(F.col(TIME), view).alias(PERIOD),
        F.lit(ENTITY_ROW).alias(KIND),
    )
    is_covered = covered(view, intervals)
    if stored is None:
        matched = asked
        found = F.lit(False)
    else:
        values = F.struct(*(F.col(spec.name) for spec in part.features))
        stored_rows = stored.select(
            *(F.col(k).alias(c) for k, c in zip(view.join_keys, keys, strict=True)),
            checkpoint(F.col("feature_ts"), view).alias(PERIOD),
            F.col("feature_ts").alias(TIME),
            F.lit(STORED_ROW).alias(KIND),
            values.alias(MATCH),
        )
        window = (
            Window.partitionBy(*keys, PERIOD)
            .orderBy(TIME, KIND)
            .rowsBetween(Window.unboundedPreceding, Window.currentRow)
        )
        both = asked.unionByName(stored_rows, allowMissingColumns=True)
        matched = both.withColumn(MATCH, F.last(MATCH, ignorenulls=True).over(window)).where(
            F.col(KIND) == ENTITY_ROW
        )
        found = F.col(MATCH).isNotNull()
    added = []
    for spec in part.features:
        dtype = SPARK_TYPES[spec.dtype]
        empty = F.lit(spec.empty_value).cast(dtype)
        value = F.col(f"{MATCH}.{spec.name}") if stored is not None else empty
        added.append(
            F.when(~is_covered, F.lit(None).cast(dtype))
            .when(found, value)
            .otherwise(empty)
            .alias(part.column(spec))
        )
    return matched.select(*rows.columns, *added)


def export(spark: SparkSession, settings: Settings, request: ExportRequest) -> ExportOutcome:
    """Join the request's entity rows and write the training set; the rows and uncovered
    counts. Raises InputError on a missing or unreadable time or key."""
    features = request.resolved()
    rows = read_entity_rows(spark, request.entities)
    entity_columns = [c for c in rows.columns if c not in (ROW, TIME)]
    parts = _group_by_view(features, entity_columns)
    keys = {k: p.view.key_dtypes[k] for p in parts for k in p.view.join_keys}
    count, uncovered, (since, last) = check_entity_rows(rows, keys, parts, request.coverage)
    joined = rows
    for part in parts:
        table = part.view.table
        stored = None
        if table in request.stored and count:
            stored = read_stored(spark, settings, part.view, part.features, since[table], last)
        joined = join_view(joined, stored, part, request.coverage.get(table, []))
    names = list(dict.fromkeys(output_column(view, spec) for view, spec in features))
    out = Path(request.out)
    tmp = out.with_name(f".{out.name}.tmp")
    # Sorting samples its input first: kept, the joins are not computed twice.
    joined = joined.persist(StorageLevel.MEMORY_AND_DISK)
    joined.orderBy(ROW).select(*entity_columns, *names).write.mode("overwrite").parquet(str(tmp))
    joined.unpersist()
    replace_folder(tmp, out)
    return ExportOutcome(rows=count, uncovered_rows=uncovered)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--request", required=True, help="the export's _request.json")
    settings = Settings()
    request = ExportRequest.load(location(settings, parser.parse_args(argv).request))
    spark = spark_session(settings, app_name=f"jstore-export-{request.run_id}")
    try:
        outcome = export(spark, settings, request)
    except InputError as e:
        outcome = ExportOutcome(error=str(e))
    finally:
        spark.stop()
    Path(request.result).write_text(outcome.model_dump_json())
    print(json.dumps(outcome.model_dump()))
    if outcome.error:
        sys.exit(2)


if __name__ == "__main__":
    main()
