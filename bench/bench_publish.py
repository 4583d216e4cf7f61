"""Publish throughput: a staged run into the offline table, next to a raw binary COPY of the
same rows into an unindexed table, and next to the same replaces done by hand, in the same run.

    .venv/bin/python bench/bench_publish.py                    # 100,000 users x 20 rows
    .venv/bin/python bench/bench_publish.py --users 20000

Staged rows of the example view user_purchases (one text key, 16 features, 10 % of the float
features null, about `--rows-per-user` change rows per user in May 2024) are written as a staged
run's Parquet, then in one process JStore publishes, each next to its floor (run before and
after JStore's run; the faster run is the floor):
- `publish` the whole month [May 1, Jun 1) into an empty table; floor: the same Parquet read in
  batches and loaded by ADBC's `adbc_ingest` (binary COPY straight from Arrow) into a fresh table
  without index or constraint;
- then the three replaces, each of which keeps the table's primary key (every read needs it),
  so a COPY into an empty unindexed table is no floor for them; their floor is the same replace
  done by hand, on a copy `hand` of the table (staged columns, same partitions and primary key)
  holding the same rows: the month again over it (`publish_republish`) and 30 days [May 1, May
  31) over it (`publish_30_days`, May 31 kept), where by hand is COPY into a new table, the
  month's other rows copied in, the key built, the partition swapped; 10 days [May 11, May 21)
  (`publish_10_days`, a third of the month), where by hand is either that swap or DELETE + COPY
  into the live table in one transaction (the faster of the two counts).
Each ends with `ratio <name>: <x>` (JStore rows/s / floor rows/s); each publish's rows/s is also
printed against the raw COPY's, and against the same raw COPY done with JStore's own binary COPY
encoder (which publish uses for a rebuilt month; for reference, not a floor). A scratch schema
and lake are removed at the end.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from jstore.config import PROJECT_ROOT, Settings
from jstore.lake import staging_dir
from jstore.model import ResolvedView
from jstore.offline import OfflineStore
from jstore.offline.binary_copy import copy_in
from jstore.repo import load_repo
from jstore.request import ComputeRequest
from jstore.staging import StagedRun, staged_schema

MAY = datetime(2024, 5, 1, tzinfo=UTC)
JUNE = datetime(2024, 6, 1, tzinfo=UTC)


def staged_rows(view: ResolvedView, users: int, per_user: int, seed: int) -> pa.Table:
    """`per_user` rows per user at distinct hours of May, features random, 10 % float nulls."""
    rng = np.random.default_rng(seed)
    hours = int((JUNE - MAY) / timedelta(hours=1))
    stride = hours // per_user
    ids = np.repeat(np.arange(users), per_user)
    offsets = np.tile(np.arange(per_user) * stride, users) + rng.integers(0, stride, len(ids))
    n = len(ids)
    columns = {
        "user_id": pa.array(np.char.add("u", ids.astype(str))),
        "feature_ts": pa.array(int(MAY.timestamp() * 1e6) + offsets * 3_600_000_000),
    }
    for spec in view.features:
        if spec.dtype == "int64":
            columns[spec.name] = pa.array(rng.integers(0, 50, n))
        else:
            columns[spec.name] = pa.array(rng.gamma(2.0, 30.0, n), mask=rng.random(n) < 0.1)
    schema = staged_schema(view)
    return pa.table([columns[f.name].cast(f.type) for f in schema], schema=schema)


def stage(settings: Settings, view: ResolvedView, table: pa.Table, start, end, run_id: str):
    path = staging_dir(settings, view.name, run_id)
    ComputeRequest(view=view, start=start, end=end, run_id=run_id).write(path)
    pq.write_table(table, path / "part-00000.parquet")
    staged = StagedRun(
        view=view.name,
        version=view.version,
        run_id=run_id,
        start=start,
        end=end,
        rows=table.num_rows,
        path=path,
    )
    staged.write_manifest()
    return staged


def raw_copy(dsn: str, schema: str, parquet: Path, name: str) -> float:
    """Seconds to read the Parquet and binary-COPY it by ADBC into a new unindexed table."""
    began = time.perf_counter()
    reader = pq.ParquetFile(parquet)
    batches = pa.RecordBatchReader.from_batches(
        reader.schema_arrow, reader.iter_batches(batch_size=65_536)
    )
    with adbc.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.adbc_ingest(name, batches, mode="create", db_schema_name=schema)
        conn.commit()
    return time.perf_counter() - began


def encoder_copy(dsn: str, schema: str, parquet: Path, name: str) -> float:
    """Seconds for `raw_copy`'s load with JStore's binary COPY encoder (binary_copy.py) on one
    psycopg connection instead of ADBC's: printed for reference, not a floor (the floor is the
    ordinary tool, ADBC)."""
    began = time.perf_counter()
    reader = pq.ParquetFile(parquet)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {})").format(
                sql.Identifier(schema, name), sql.Identifier(schema, "raw_copy_1")
            )
        )
        copy_in(
            conn,
            sql.Identifier(schema, name),
            reader.schema_arrow.names,
            reader.iter_batches(batch_size=65_536),
        )
        conn.commit()
    return time.perf_counter() - began


def hand_replace(dsn: str, schema: str, staged: StagedRun) -> float:
    """Seconds to replace [start, end) of the `hand` table by the Parquet's rows as one would by
    hand: one transaction that deletes the range and binary-COPYs (ADBC) the rows into the live
    table, whose primary key (the index point-in-time reads need) is maintained row by row."""
    began = time.perf_counter()
    reader = pq.ParquetFile(staged.parquet_files[0])
    batches = pa.RecordBatchReader.from_batches(
        reader.schema_arrow, reader.iter_batches(batch_size=65_536)
    )
    start, end = staged.start, staged.end
    with adbc.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {schema}.hand "
            f"WHERE feature_ts >= '{start.isoformat()}' AND feature_ts < '{end.isoformat()}'"
        )
        cursor.adbc_ingest("hand", batches, mode="append", db_schema_name=schema)
        conn.commit()
    return time.perf_counter() - began


def hand_swap(dsn: str, schema: str, staged: StagedRun) -> float:
    """Seconds to replace [start, end) of May in the `hand` table by the Parquet's rows as a
    competent engineer would by hand when most of the month changes: binary COPY (ADBC) into a
    new table with a CHECK on the month, the month's other rows copied in, the primary key built
    by one sort, then one transaction that swaps the new table in for the old partition."""
    began = time.perf_counter()
    start, end = (sql.Literal(t) for t in (staged.start, staged.end))
    may, june = sql.Literal(MAY), sql.Literal(JUNE)
    hand, old, new = (sql.Identifier(schema, n) for n in ("hand", "hand_may", "hand_new"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (LIKE {}, CHECK (feature_ts >= {} AND feature_ts < {}))"
            ).format(new, hand, may, june)
        )
        reader = pq.ParquetFile(staged.parquet_files[0])
        batches = pa.RecordBatchReader.from_batches(
            reader.schema_arrow, reader.iter_batches(batch_size=65_536)
        )
        with adbc.connect(dsn) as loader, loader.cursor() as cursor:
            cursor.adbc_ingest("hand_new", batches, mode="append", db_schema_name=schema)
            loader.commit()
        if (staged.start, staged.end) != (MAY, JUNE):
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} SELECT * FROM {} "
                    "WHERE NOT (feature_ts >= {} AND feature_ts < {})"
                ).format(new, old, start, end)
            )
        conn.execute(sql.SQL("SET maintenance_work_mem = '256MB'"))
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (user_id, feature_ts)").format(new))
        with conn.transaction():
            conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(hand, old))
            conn.execute(sql.SQL("DROP TABLE {}").format(old))
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO hand_may").format(new))
            conn.execute(
                sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    hand, old, may, june
                )
            )
    return time.perf_counter() - began


def copy_for_hand(dsn: str, schema: str, view: ResolvedView) -> None:
    """`hand`: the published rows' staged columns in a table partitioned by month like the
    view's, with its primary key (untimed set-up of the hand-made replace)."""
    columns = sql.SQL(", ").join(map(sql.Identifier, staged_schema(view).names))
    keys = sql.SQL(", ").join(map(sql.Identifier, [*view.join_keys, "feature_ts"]))
    target = sql.Identifier(schema, "hand")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {}) PARTITION BY RANGE (feature_ts)").format(
                target, sql.Identifier(schema, view.table)
            )
        )
        conn.execute(sql.SQL("ALTER TABLE {} DROP _run_id, DROP _computed_at").format(target))
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(schema, "hand_may"), target, sql.Literal(MAY), sql.Literal(JUNE)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} SELECT {} FROM {}").format(
                target, columns, sql.Identifier(schema, view.table)
            )
        )
        conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(target, keys))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(target))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rows-per-user", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    view = load_repo(PROJECT_ROOT / "examples" / "ecommerce").resolve("user_purchases", 1)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            offline_schema=f"bench_{uuid.uuid4().hex[:8]}", lake_uri=str(Path(tmp) / "lake")
        )
        dsn = settings.postgres_dsn.get_secret_value()
        table = staged_rows(view, args.users, args.rows_per_user, args.seed)
        n = table.num_rows
        month = stage(settings, view, table, MAY, JUNE, "bench-month")
        again = stage(settings, view, table, MAY, JUNE, "bench-again")
        intervals = {
            "publish_30_days": (MAY, JUNE - timedelta(days=1)),
            "publish_10_days": (MAY + timedelta(days=10), MAY + timedelta(days=20)),
        }
        parts = {}
        for name, (start, end) in intervals.items():
            ts = table["feature_ts"]
            rows = table.filter(
                pc.and_(
                    pc.greater_equal(ts, pa.scalar(start, ts.type)),
                    pc.less(ts, pa.scalar(end, ts.type)),
                )
            )
            parts[name] = (
                stage(settings, view, rows, start, end, name.replace("_", "-")),
                rows.num_rows,
            )
        parquet = month.parquet_files[0]
        print(f"{n:,} staged rows of {view.name} ({len(view.features)} features), May 2024")
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(settings.offline_schema))
                )
            raw = [raw_copy(dsn, settings.offline_schema, parquet, "raw_copy_1")]
            encoded = [encoder_copy(dsn, settings.offline_schema, parquet, "encoder_copy_1")]
            timings, hand = {}, {}
            by_hand = {  # every way by hand a replace is done: the fastest run is its floor
                "publish_republish": {"by hand: May swapped in (COPY, key, swap)": hand_swap},
                "publish_30_days": {"by hand: May 1-31 swapped in, May 31 kept": hand_swap},
                "publish_10_days": {
                    "by hand: DELETE May 11-21 + COPY, one xact": hand_replace,
                    "by hand: May 11-21 swapped in, 21 days kept": hand_swap,
                },
            }
            schema = settings.offline_schema
            with OfflineStore(settings) as store:
                store.ensure_table(view)
                for name, (staged, rows) in {
                    "publish": (month, n),
                    "publish_republish": (again, n),
                    **parts,
                }.items():
                    if name == "publish_republish":
                        copy_for_hand(dsn, schema, view)
                    ways = by_hand.get(name, {})
                    same = again if name == "publish_republish" else staged
                    hand[name] = {label: [way(dsn, schema, same)] for label, way in ways.items()}
                    began = time.perf_counter()
                    store.publish(view, staged)
                    timings[name] = (time.perf_counter() - began, rows)
                    for label, way in ways.items():  # before and after JStore's run
                        hand[name][label].append(way(dsn, schema, same))
            raw.append(raw_copy(dsn, schema, parquet, "raw_copy_2"))
            encoded.append(encoder_copy(dsn, schema, parquet, "encoder_copy_2"))
            baselines = {
                **hand,
                "publish": {"raw binary COPY (ADBC adbc_ingest, unindexed table)": raw},
            }
            floors = {
                name: timings[name][1] / min(min(runs) for runs in ways.values())
                for name, ways in baselines.items()
            }
            for ways in baselines.values():
                for label, runs in ways.items():
                    print(
                        f"{label:54} {min(runs):6.2f} s  (runs: "
                        + ", ".join(f"{s:.2f} s" for s in runs)
                        + ")"
                    )
            print(
                f"{'for reference, not a floor: raw COPY by JStore encoder':54} "
                f"{min(encoded):6.2f} s  (runs: " + ", ".join(f"{s:.2f} s" for s in encoded) + ")"
            )
            labels = {
                "publish": "publish May into an empty table (partition swap)",
                "publish_republish": "publish May again over it (partition swap)",
                "publish_30_days": "publish May 1-31 over it (rebuild, keep May 31)",
                "publish_10_days": "publish May 11-21 over it (rebuild, keep 21 days)",
            }
            for name, (took, rows) in timings.items():
                print(
                    f"{labels[name]:54} {took:6.2f} s  {rows / took:>10,.0f} rows/s  "
                    f"({rows / took / (n / min(raw)):.2f}x the raw COPY's rows/s, "
                    f"{rows / took / (n / min(encoded)):.2f}x by JStore's encoder)"
                )
            for name, (took, rows) in timings.items():
                print(f"ratio {name}: {rows / took / floors[name]:.2f}")
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(settings.offline_schema)
                    )
                )


if __name__ == "__main__":
    main()
