"""Spark job: a table source's rows with timestamp in [start, end) into the landing zone.

    spark-submit --jars <jdbc jar> jobs/extract_table.py SOURCE --start ISO --end ISO
        [--result-file PATH] --lease-token N [--snapshot ID]

Settings come from the JSTORE_* environment; the source from the registry; the DSN of the
source's database from EXTRACT_SOURCE_DSN (resolved by the launcher; never on the command line).
The interval is widened over the landed extract intervals it overlaps and replaces them, and
read in JDBC partitions on the timestamp column (the rules are in jstore/ingest/extract.py). The
caller (jstore.ingest.extract.extract) holds the source's lease; its token fences the commit
(jstore/registry/leases.py).
"""

from __future__ import annotations

import jobs.installed_pyspark  # noqa: F401  first: pyspark from the installed package, not a zip

# isort: split
import argparse
import json
import os
from datetime import datetime
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.landing import landing_schema
from jobs.spark import spark_session
from jstore.config import Settings
from jstore.durations import as_utc, parse_timestamp
from jstore.ingest.extract import ExtractPlan, commit_extract, plan_extract, read_partitions
from jstore.ingest.table_database import SOURCE_DSN_ENV, snapshot_statement, source_dsn
from jstore.ingest.transaction import spark_output_dir
from jstore.lake_fs import lake_root
from jstore.model import TableSource
from jstore.registry import Registry
from jstore.registry.leases import Lease
from jstore.staging import parquet_rows

FETCH_ROWS = 10_000
"""Rows a JDBC read fetches at a time (a cursor), instead of its whole result at once."""


def jdbc_options(settings: Settings, dsn: str | None = None) -> dict[str, str]:
    """The JDBC url, user and password of a DSN (default: `Settings.postgres_dsn`); sessions run
    in UTC."""
    dsn = urlparse(dsn or settings.postgres_dsn.get_secret_value())
    return {
        "url": f"jdbc:postgresql://{dsn.hostname}:{dsn.port or 5432}{dsn.path}",
        "user": unquote(dsn.username or ""),
        "password": unquote(dsn.password or ""),
        "driver": "org.postgresql.Driver",
        "sessionInitStatement": "SET TIME ZONE 'UTC'",
    }


def bound(ts: datetime) -> str:
    """A partition bound as Spark reads it, in the session's time zone (UTC)."""
    return as_utc(ts).strftime("%Y-%m-%d %H:%M:%S")


def read_table(
    spark: SparkSession,
    settings: Settings,
    source: TableSource,
    start: datetime,
    end: datetime,
    dsn: str,
    snapshot: str | None = None,
) -> DataFrame:
    """The source's rows with `start <= timestamp < end`, typed, with the lineage columns and
    `event_date`, read in `read_partitions` range partitions of the timestamp column. Spark's
    partitions are disjoint and cover every value (the first takes all below its upper bound,
    the last all above its lower one); the interval's filter is pushed down to each. With a
    `snapshot` (jstore.ingest.table_database.exported_snapshot) every partition reads it.

    A `fetchsize` streams each partition through a cursor, and makes Spark turn autocommit off
    before the session statement, which so opens the transaction the partition's query runs in.
    """
    options = jdbc_options(settings, dsn)
    if snapshot is not None:
        statements = (snapshot_statement(snapshot), options["sessionInitStatement"])
        options["sessionInitStatement"] = "; ".join(statements)
    relation = source.table or f"({source.query}) AS source"
    reader = (
        spark.read.format("jdbc")
        .options(**options)
        .option("dbtable", relation)
        .option("fetchsize", str(FETCH_ROWS))
    )
    partitions = read_partitions(settings, start, end)
    if partitions > 1:
        reader = reader.options(
            partitionColumn=source.timestamp_column,
            lowerBound=bound(start),
            upperBound=bound(end),
            numPartitions=str(partitions),
        )
    ts = F.col(source.timestamp_column)
    rows = reader.load().where((ts >= F.lit(start)) & (ts < F.lit(end)))
    schema = landing_schema(source)
    lineage = {
        "_topic": F.lit(source.table or source.name),
        "_partition": F.lit(None),
        "_offset": F.lit(None),
        "_ingested_at": F.current_timestamp(),
    }
    columns = [
        (lineage[f.name] if f.name in lineage else F.col(f.name)).cast(f.dataType).alias(f.name)
        for f in schema.fields
    ]
    return rows.select(*columns, F.to_date(ts).alias("event_date"))


def extract_to_landing(
    spark: SparkSession,
    settings: Settings,
    source: TableSource,
    start: datetime,
    end: datetime,
    lease_token: int,
    dsn: str | None = None,
    snapshot: str | None = None,
) -> dict:
    """Read the planned interval, write it partitioned by event date, swap it in; returns the
    fields of ExtractResult that the job knows. `dsn`: the source's database (default: resolved
    from its definition); `snapshot`: the database snapshot every partition reads."""
    plan: ExtractPlan = plan_extract(settings, source.name, start, end)
    output = spark_output_dir(settings, source.name)
    dsn = dsn or source_dsn(settings, source)
    frame = read_table(spark, settings, source, plan.start, plan.end, dsn, snapshot)
    frame.write.mode("overwrite").partitionBy("event_date").parquet(output.spark_uri)
    rows = parquet_rows(output.glob("event_date=*/*.parquet"))
    with Registry(settings) as registry:
        lease = Lease.of_token(registry, source.name, lease_token, settings.lease_duration_s)
        files = commit_extract(settings, plan, output, lease)
    return {
        "source": source.name,
        "table": source.table or source.name,
        "requested_start": plan.requested_start.isoformat(),
        "requested_end": plan.requested_end.isoformat(),
        "start": plan.start.isoformat(),
        "end": plan.end.isoformat(),
        "rows": rows,
        "files": files,
        "replaced": len(plan.replaces),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--start", required=True, type=parse_timestamp)
    parser.add_argument("--end", required=True, type=parse_timestamp)
    parser.add_argument("--result-file")
    parser.add_argument("--lease-token", required=True, type=int)
    parser.add_argument("--snapshot", help="A pg_export_snapshot() id every partition reads.")
    args = parser.parse_args()
    settings = Settings()
    registry = Registry(settings)
    try:
        source = registry.get_source(args.source)
    finally:
        registry.close()
    if not isinstance(source, TableSource):
        raise SystemExit(f"source: {args.source!r} is not a table source")
    spark = spark_session(settings, app_name=f"jstore-extract-{source.name}")
    try:
        outcome = extract_to_landing(
            spark,
            settings,
            source,
            args.start,
            args.end,
            args.lease_token,
            os.environ.get(SOURCE_DSN_ENV),
            args.snapshot,
        )
    finally:
        spark.stop()
    text = json.dumps(outcome)
    if args.result_file:
        lake_root(settings).parse(args.result_file).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
