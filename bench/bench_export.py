"""Training-set export: JStore's point-in-time join next to DuckDB's ASOF JOIN.

    .venv/bin/python bench/bench_export.py                          # small, a minute or two
    .venv/bin/python bench/bench_export.py --users 100000 --rows 1000000   # the issue's sizes

Feature rows of user_purchases (step 1h), merchant_sales (1d) and user_categories (1h) are
generated directly (change-only rows at random steps over `--days`), published through staged
runs into a scratch schema, then `--rows` entity rows (a Parquet file) get every feature of the
three views, streamed to a Parquet file as `jstore export` does, twice: as it does (reading the
stored rows from the published files, the staged runs' Parquet, where they are worth reading:
pit_join.FILE_ROWS_PER_SPAN) and from PostgreSQL only (the staged runs out of reach, as for a
table without published files, or a view of several key ranges). The baseline is DuckDB's ASOF
LEFT JOIN over the same rows written to Parquet and loaded once into DuckDB tables (loading is
not timed; 2 threads), in the same run, twice: its answer written to a Parquet file (`COPY …
TO`, like with like: JStore's time includes writing the file) and its answer as an in-memory
Arrow table (no file: a floor JStore's time is not made of). Each side runs in a fresh child
process, which reports its time, its peak resident memory (VmHWM) and its resident memory after
imports, before the work. The figures are `ratio export_<rows>_from_database` (from PostgreSQL,
against DuckDB to Parquet), `ratio export_<rows>_in_memory` (as `jstore export` does, against
DuckDB in memory) and, last, `ratio export_<rows>: <JStore rows/s as `jstore export` does /
DuckDB-to-Parquet rows/s>`. The scratch schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from jstore.arrow_types import ARROW_TYPES
from jstore.config import PROJECT_ROOT, Settings
from jstore.lake import staging_dir
from jstore.model import ResolvedView
from jstore.offline import OfflineStore
from jstore.repo import load_repo
from jstore.staging import PARQUET_CODEC, StagedRun

T0 = datetime(2024, 5, 1, tzinfo=UTC)
VIEWS = ("user_purchases", "merchant_sales", "user_categories")
ROWS_PER_ENTITY = {"user_purchases": 20, "merchant_sales": 25, "user_categories": 8}


def feature_rows(
    view: ResolvedView, entities: int, days: int, rng: np.random.Generator
) -> pa.Table:
    """About ROWS_PER_ENTITY change rows per entity, at distinct random steps in the days."""
    steps = int(timedelta(days=days) / view.definition.step)
    per_entity = min(ROWS_PER_ENTITY[view.name], steps)
    ids = np.repeat(np.arange(entities), per_entity)
    offsets = np.concatenate(
        [rng.choice(steps, per_entity, replace=False) for _ in range(entities)]
    )
    step_us = int(view.definition.step.total_seconds() * 1_000_000)
    start_us = int(T0.timestamp() * 1_000_000)
    key = view.join_keys[0]
    columns = {
        key: pa.array(np.char.add(key[0], ids.astype(str))),
        "feature_ts": pa.array(start_us + offsets * step_us).cast(ARROW_TYPES["timestamp"]),
    }
    n = len(ids)
    for spec in view.features:
        if spec.dtype == "int64":
            columns[spec.name] = pa.array(rng.integers(0, 50, n))
        else:
            values = rng.gamma(2.0, 30.0, n)
            columns[spec.name] = pa.array(values, mask=rng.random(n) < 0.1)
    return pa.table(columns)


def stage(settings: Settings, view: ResolvedView, table: pa.Table, days: int) -> StagedRun:
    run_id = f"bench-{view.name}"
    path = staging_dir(settings, view.name, run_id)
    path.mkdir(parents=True, exist_ok=True)
    # as the compute job writes staged rows (zstd, no dictionary for floats): the export may
    # read them back
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    dictionary = [name for name in table.column_names if name not in floats]
    pq.write_table(
        table, path / "part-00000.parquet", compression=PARQUET_CODEC, use_dictionary=dictionary
    )
    staged = StagedRun(
        view=view.name,
        version=view.version,
        run_id=run_id,
        start=T0,
        end=T0 + timedelta(days=days),
        rows=table.num_rows,
        path=path,
    )
    staged.write_manifest()
    return staged


def entity_rows(users: int, merchants: int, rows: int, days: int, rng: np.random.Generator):
    """Entity rows over the days plus a day past them; 5% of users never seen."""
    span_us = int(timedelta(days=days + 1).total_seconds() * 1_000_000)
    ts = int(T0.timestamp() * 1_000_000) + rng.integers(0, span_us, rows)
    return pa.table(
        {
            "user_id": np.char.add("u", rng.integers(0, int(users * 1.05), rows).astype(str)),
            "merchant_id": np.char.add("m", rng.integers(0, merchants, rows).astype(str)),
            "event_timestamp": pa.array(ts).cast(ARROW_TYPES["timestamp"]),
            "label": rng.integers(0, 2, rows),
        }
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent the child was spawned by)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def jstore_export(
    schema: str, folder: Path, days: int, lake: str = "lake"
) -> tuple[float, int, float, float, dict[str, float]]:
    """In a child process: the entity rows' Parquet joined and streamed to a Parquet file, with
    the lake `<folder>/<lake>`: the one the views were published from (the join reads their
    staged runs' files), or another, empty (the staged runs out of reach: the join reads
    PostgreSQL, as for tables without published files).

    Returns (seconds, rows, MB resident after imports, peak MB resident, seconds per phase: the
    join's own, jstore.phases)."""
    from jstore import phases
    from jstore.export import entity_batches, write_batches
    from jstore.lake_fs import local_path

    views = {
        name: load_repo(PROJECT_ROOT / "examples" / "ecommerce").resolve(name, 1) for name in VIEWS
    }
    features = [(v, f) for v in views.values() for f in v.features]
    coverage = {v.table: [(T0, T0 + timedelta(days=days))] for v in views.values()}
    idle = peak_rss_mb()
    began = time.perf_counter()
    settings = Settings(offline_schema=schema, lake_uri=str(folder / lake))
    with phases.collecting() as seconds, OfflineStore(settings) as store:
        entity_schema, batches = entity_batches(folder / "entities.parquet", features)
        join = store.prepared_join(batches, entity_schema, features, coverage)
        out = local_path(folder / "out.parquet")
        with phases.timed("second pass and write"):
            rows = write_batches(join.output_schema, join.batches(batches), out)
    return time.perf_counter() - began, rows, idle, peak_rss_mb(), dict(seconds)


def duckdb_asof(folder: Path, to_parquet: bool) -> tuple[float, float, int, float, float]:
    """The same join with DuckDB's ASOF LEFT JOIN (2 threads, the cores here), in a child; its
    answer written to `duckdb.parquet` (`to_parquet`) or an in-memory Arrow table.

    Each Parquet file is read once into a DuckDB table first, so the join is timed over DuckDB's
    own storage as ours is over PostgreSQL's; returns (seconds to load, seconds to join, rows,
    MB resident after imports, peak MB resident).
    """
    views = {
        name: load_repo(PROJECT_ROOT / "examples" / "ecommerce").resolve(name, 1) for name in VIEWS
    }
    idle = peak_rss_mb()
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    began = time.perf_counter()
    con.execute(
        "CREATE TABLE entities AS SELECT *, row_number() OVER () AS _row "
        f"FROM read_parquet('{folder / 'entities.parquet'}')"
    )
    for name in views:
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{folder / name}.parquet')")
    loaded = time.perf_counter() - began
    select = ["e.* EXCLUDE (_row)"]
    joins = []
    for i, (name, view) in enumerate(views.items()):
        key = view.join_keys[0]
        select += [f'v{i}."{f.name}" AS "{name}__{f.name}"' for f in view.features]
        joins.append(
            f"ASOF LEFT JOIN {name} v{i} "
            f'ON e."{key}" = v{i}."{key}" AND e.event_timestamp >= v{i}.feature_ts'
        )
    query = f"SELECT {', '.join(select)} FROM entities e {' '.join(joins)} ORDER BY e._row"
    began = time.perf_counter()
    if to_parquet:
        out = folder / "duckdb.parquet"
        con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)")
        rows = pq.ParquetFile(out).metadata.num_rows
    else:
        rows = con.sql(query).to_arrow_table().num_rows
    return loaded, time.perf_counter() - began, rows, idle, peak_rss_mb()


def bench_arguments(description: str) -> argparse.Namespace:
    """The data's size, shared with bench_export_spark.py."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=100_000, help="entity rows to join")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def publish_bench_data(settings: Settings, folder: Path, args: argparse.Namespace) -> None:
    """Publish the three views' rows into the settings' schema (each view's rows also as
    `<view>.parquet`, DuckDB's input) and write `entities.parquet`."""
    rng = np.random.default_rng(args.seed)
    repo = load_repo(PROJECT_ROOT / "examples" / "ecommerce")
    views = {name: repo.resolve(name, 1) for name in VIEWS}
    merchants = max(args.users // 20, 1)
    with OfflineStore(settings) as store:
        print(
            f"users {args.users:,}  merchants {merchants:,}  days {args.days}  "
            f"entity rows {args.rows:,}"
        )
        for name, view in views.items():
            entities = merchants if name == "merchant_sales" else args.users
            table = feature_rows(view, entities, args.days, rng)
            pq.write_table(table, folder / f"{name}.parquet")
            staged = stage(settings, view, table, args.days)
            began = time.perf_counter()
            store.publish(view, staged)
            took = time.perf_counter() - began
            store.conn.execute(
                sql.SQL("ANALYZE {}").format(sql.Identifier(settings.offline_schema, view.table))
            )
            print(
                f"publish {name:16} {table.num_rows:>10,} rows  {took:6.2f} s  "
                f"{table.num_rows / took:>10,.0f} rows/s"
            )
        entities = entity_rows(args.users, merchants, args.rows, args.days, rng)
        pq.write_table(entities, folder / "entities.parquet")


@contextmanager
def published_bench_data(args: argparse.Namespace) -> Iterator[tuple[Settings, Path]]:
    """A scratch offline schema and lake with the bench's views published and its entity rows
    in `<folder>/entities.parquet`; the schema is dropped at the end."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = Settings(
            offline_schema=f"bench_{uuid.uuid4().hex[:8]}", lake_uri=str(folder / "lake")
        )
        try:
            publish_bench_data(settings, folder, args)
            yield settings, folder
        finally:
            with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as c:
                c.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(settings.offline_schema)
                    )
                )


def main() -> None:
    args = bench_arguments(__doc__.splitlines()[0])
    with published_bench_data(args) as (settings, folder):
        child = multiprocessing.get_context("spawn")
        ours = {}
        for lake in ("lake", "no-lake"):
            with child.Pool(1, maxtasksperchild=1) as pool:
                ours[lake] = pool.apply(
                    jstore_export, (settings.offline_schema, folder, args.days, lake)
                )
        duck = {}
        for to_parquet in (True, False):
            with child.Pool(1, maxtasksperchild=1) as pool:
                duck[to_parquet] = pool.apply(duckdb_asof, (folder, to_parquet))
        assert ours["lake"][1] == ours["no-lake"][1] == duck[True][2] == duck[False][2] == args.rows
        size = f"{args.rows:,} rows x 22 features"
        for lake, source in (("lake", ","), ("no-lake", " from PostgreSQL,")):
            took, _, idle, peak, phases = ours[lake]
            print(
                f"jstore export{source:17} to Parquet  {size}  {took:6.2f} s  "
                f"{args.rows / took:>10,.0f} rows/s  peak RSS {peak:,.0f} MB "
                f"({idle:,.0f} MB after imports)"
            )
            print("  " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items()))
        for to_parquet, what in ((True, "to Parquet  "), (False, "in memory   ")):
            loading, took, _, idle, peak = duck[to_parquet]
            print(
                f"duckdb ASOF JOIN, {what}              {size}  {took:6.2f} s  "
                f"{args.rows / took:>10,.0f} rows/s  peak RSS {peak:,.0f} MB "
                f"({idle:,.0f} MB after imports; + {loading:.2f} s reading the Parquet once)"
            )
        label = (
            f"{args.rows // 1_000_000}m" if args.rows % 1_000_000 == 0 else f"{args.rows // 1000}k"
        )
        print(f"ratio export_{label}_from_database: {duck[True][1] / ours['no-lake'][0]:.2f}")
        print(f"ratio export_{label}_in_memory: {duck[False][1] / ours['lake'][0]:.2f}")
        print(f"ratio export_{label}: {duck[True][1] / ours['lake'][0]:.2f}")


if __name__ == "__main__":
    main()
