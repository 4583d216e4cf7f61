"""Publish a staged run: its rows replace the view's rows in [start, end), in one transaction.

First the monthly partitions the interval needs are created (plain PostgreSQL; a short
transaction of its own). Then, in one transaction holding the table's advisory lock:
1. COPY the staged Parquet into a temporary table, refusing any row outside [start, end);
2. delete the table's rows in [start, end);
3. insert the staged rows, stamped with the run id and one `_computed_at` (clock_timestamp()).

A crash anywhere before the commit leaves the previous rows untouched (the transaction rolls
back); coverage is extended by the caller only after the commit.

`_computed_at` is read after the lock is taken, so within one table it grows in commit order:
a reader that remembers the largest `_computed_at` it saw (the materializer's watermark) never
misses a later publish.

Crash hook for tests: `JSTORE_CRASH_AT=publish:after_delete` kills the process (SIGKILL) between
the delete and the insert.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import datetime

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from jstore.arrow_types import ARROW_TYPES
from jstore.model import ResolvedView
from jstore.offline.arrow_copy import copy_in, from_epoch_us, wire_type
from jstore.offline.tables import TableLayout, lock_key, table_id, value_columns
from jstore.staging import StagedRun

CRASH_ENV = "JSTORE_CRASH_AT"
STAGED_TABLE = "_jstore_staged"
BATCH_ROWS = 65_536


class StagedRunRejected(ValueError):
    """A staged run that does not fit its view or its interval; nothing was published."""


def crash_point(name: str) -> None:
    """Die here, like a killed worker, when the test hook `JSTORE_CRASH_AT` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def publish_interval(
    conn: psycopg.Connection, layout: TableLayout, view: ResolvedView, staged: StagedRun
) -> int:
    """Replace [staged.start, staged.end) of the view's table by the staged rows; returns rows."""
    if (staged.view, staged.version) != (view.name, view.version):
        raise StagedRunRejected(
            f"staged run {staged.run_id!r} is {staged.view} v{staged.version}, "
            f"not {view.name} v{view.version}"
        )
    target = table_id(layout.schema, view)
    dtypes = staged_dtypes(view)
    columns = list(dtypes)
    layout.ensure_partitions(conn, view, staged.start, staged.end)
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")  # compiling these plans costs more than it saves
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", [lock_key(layout.schema, view.table)]
        )
        conn.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
                sql.Identifier(STAGED_TABLE),
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(wire_type(d)))
                    for c, d in dtypes.items()
                ),
            )
        )
        rows = copy_in(conn, sql.Identifier(STAGED_TABLE), columns, _staged_batches(view, staged))
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE feature_ts >= %s AND feature_ts < %s").format(target),
            [staged.start, staged.end],
        )
        crash_point("publish:after_delete")
        computed_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
        values = sql.SQL(", ").join(
            from_epoch_us(sql.Identifier(c)) if d == "timestamp" else sql.Identifier(c)
            for c, d in dtypes.items()
        )
        conn.execute(
            sql.SQL("INSERT INTO {} ({}, _run_id, _computed_at) SELECT {}, %s, %s FROM {}").format(
                target,
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                values,
                sql.Identifier(STAGED_TABLE),
            ),
            [staged.run_id, computed_at],
        )
    return rows


def staged_dtypes(view: ResolvedView) -> dict[str, str]:
    """The dtype of every column of a staged run, in order: keys, feature_ts, features."""
    return {
        **{key: view.key_dtypes[key] for key in view.join_keys},
        "feature_ts": "timestamp",
        **{f.name: f.dtype for f in view.features},
    }


def _staged_batches(view: ResolvedView, staged: StagedRun) -> Iterator[pa.RecordBatch]:
    """The staged rows as batches of the table's columns, checked against the interval."""
    columns = value_columns(view)
    schema = pa.schema([(c, ARROW_TYPES[d]) for c, d in staged_dtypes(view).items()])
    start = pa.scalar(staged.start, ARROW_TYPES["timestamp"])
    end = pa.scalar(staged.end, ARROW_TYPES["timestamp"])
    for path in staged.parquet_files:
        parquet = pq.ParquetFile(path)
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise StagedRunRejected(f"{path.name}: staged rows lack column {missing[0]!r}")
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            batch = pa.RecordBatch.from_arrays(
                [batch.column(c).cast(schema.field(c).type) for c in columns], schema=schema
            )
            ts = batch.column("feature_ts")
            inside = pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))
            if ts.null_count or not pc.all(inside).as_py():
                raise StagedRunRejected(
                    f"feature_ts: staged run {staged.run_id!r} has rows outside "
                    f"[{_iso(staged.start)}, {_iso(staged.end)})"
                )
            yield batch


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")
