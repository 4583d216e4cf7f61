"""Training-set export: the Spark engine (`jstore export --engine spark`) next to the default
engine, in the same run.

    .venv/bin/python bench/bench_export_spark.py                                # 100k rows
    .venv/bin/python bench/bench_export_spark.py --users 100000 --rows 1000000  # the issue's

The data are bench_export.py's (user_purchases, merchant_sales, user_categories: change rows
at random steps over `--days`, published into a scratch schema; `--rows` entity rows in one
Parquet file, every feature of the three views asked). Each engine runs in a fresh child
process: the default engine streams its join to a Parquet file as `jstore export` does; the
Spark engine runs the export job's own function (jobs/export_training_set.py) on a
`local[2]` session started before the clock (the JVM start, a few seconds, is not timed), from
the JDBC reads of the offline tables to the Parquet folder written. Both outputs are compared
row for row. The figure is `ratio spark_vs_default_export: <Spark rows/s / default rows/s>`.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_export import T0, VIEWS, bench_arguments, jstore_export, published_bench_data

from jstore.config import PROJECT_ROOT, Settings
from jstore.repo import load_repo


def spark_export(schema: str, folder: Path, days: int) -> tuple[float, int, float]:
    """In a child process: the export job on local[2]; (seconds, rows, seconds to start)."""
    from jobs.export_training_set import export
    from jobs.spark import spark_session
    from jstore.export_spark import build_request

    repo = load_repo(PROJECT_ROOT / "examples" / "ecommerce")
    views = {name: repo.resolve(name, 1) for name in VIEWS}
    features = [(v, f) for v in views.values() for f in v.features]
    coverage = {v.table: [(T0, T0 + timedelta(days=days))] for v in views.values()}
    settings = Settings(offline_schema=schema, lake_uri=str(folder / "lake"))
    began = time.perf_counter()
    spark = spark_session(
        settings, app_name="bench-export-spark", master="local[2]", shuffle_partitions=8
    )
    started = time.perf_counter() - began
    began = time.perf_counter()
    request = build_request(
        settings,
        folder / "entities.parquet",
        folder / "spark.parquet",
        features,
        coverage,
        "bench-spark",
    )
    outcome = export(spark, settings, request)
    took = time.perf_counter() - began
    spark.stop()
    return took, outcome.rows, started


def main() -> None:
    args = bench_arguments(__doc__.splitlines()[0])
    with published_bench_data(args) as (settings, folder):
        child = multiprocessing.get_context("spawn")
        with child.Pool(1, maxtasksperchild=1) as pool:
            ours, rows, *_ = pool.apply(jstore_export, (settings.offline_schema, folder, args.days))
        with child.Pool(1, maxtasksperchild=1) as pool:
            spark, spark_rows, started = pool.apply(
                spark_export, (settings.offline_schema, folder, args.days)
            )
        assert rows == spark_rows == args.rows
        default_out = pq.read_table(folder / "out.parquet")
        spark_out = pq.read_table(folder / "spark.parquet")
        assert spark_out.column_names == default_out.column_names
        same = spark_out.cast(default_out.schema).equals(default_out)
        size = f"{args.rows:,} rows x 22 features"
        print(
            f"default engine (PostgreSQL + numpy) {size}  {ours:7.2f} s  "
            f"{args.rows / ours:>10,.0f} rows/s"
        )
        print(
            f"spark engine (local[2], JDBC)       {size}  {spark:7.2f} s  "
            f"{args.rows / spark:>10,.0f} rows/s  (+ {started:.1f} s starting Spark)"
        )
        print(f"identical rows: {same}")
        print(f"ratio spark_vs_default_export: {ours / spark:.2f}")


if __name__ == "__main__":
    main()
