"""Spark job: a table source's rows with timestamp in [start, end) into the landing zone.

    spark-submit --jars <jdbc jar> jobs/extract_table.py SOURCE --start ISO --end ISO
        [--result-file PATH] --lease-token N

Settings come from the JSTORE_* environment; the source from the registry. The interval is
widened over the landed extract intervals it overlaps and replaces them (the rule is in
jstore/ingest/extract.py). The caller (jstore.ingest.extract.extract) holds the source's lease;
its token fences the commit (jstore/registry/leases.py).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.landing import landing_schema
from jobs.spark import spark_session
from jstore.config import Settings
from jstore.durations import parse_timestamp
from jstore.ingest.extract import ExtractPlan, commit_extract, plan_extract
from jstore.ingest.transaction import spark_output_dir
from jstore.lake_fs import lake_root
from jstore.model import TableSource
from jstore.registry import Registry
from jstore.registry.leases import Lease


def jdbc_options(settings: Settings) -> dict[str, str]:
    """The JDBC url, user and password of `Settings.postgres_dsn`; sessions run in UTC."""
    dsn = urlparse(settings.postgres_dsn.get_secret_value())
    return {
        "url": f"jdbc:postgresql://{dsn.hostname}:{dsn.port or 5432}{dsn.path}",
        "user": unquote(dsn.username or ""),
        "password": unquote(dsn.password or ""),
        "driver": "org.postgresql.Driver",
        "sessionInitStatement": "SET TIME ZONE 'UTC'",
    }


def read_table(
    spark: SparkSession, settings: Settings, source: TableSource, start: datetime, end: datetime
) -> DataFrame:
    """The source's rows with `start <= timestamp < end`, typed, with the lineage columns and
    `event_date`. The filter is pushed down to PostgreSQL by Spark."""
    reader = spark.read.format("jdbc").options(**jdbc_options(settings))
    if source.table:
        reader = reader.option("dbtable", source.table)
    else:
        reader = reader.option("query", source.query)
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
) -> dict:
    """Read the planned interval, write it partitioned by event date, swap it in; returns the
    fields of ExtractResult that the job knows."""
    plan: ExtractPlan = plan_extract(settings, source.name, start, end)
    output = spark_output_dir(settings, source.name)
    frame = read_table(spark, settings, source, plan.start, plan.end)
    frame.write.mode("overwrite").partitionBy("event_date").parquet(output.spark_uri)
    rows = sum(
        pq.ParquetFile(p.open_input()).metadata.num_rows
        for p in output.glob("event_date=*/*.parquet")
    )
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
            spark, settings, source, args.start, args.end, args.lease_token
        )
    finally:
        spark.stop()
    text = json.dumps(outcome)
    if args.result_file:
        lake_root(settings).parse(args.result_file).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
