"""Publish a staged run: its rows replace the view's rows in [start, end), in one transaction.

The staged rows go to PostgreSQL by binary COPY straight from Arrow (ADBC's `adbc_ingest`, on a
connection of its own) into unindexed scratch tables of the view's schema, before the
transaction; the transaction then swaps them in. Holding the table's advisory lock (a session
lock, from before the load until after the commit, so publishes of one table run one at a time
and `_computed_at` grows in commit order):

1. The monthly partitions the interval needs are created (plain PostgreSQL; a short transaction
   of its own).
2. The interval is cut into pieces. On plain PostgreSQL, each calendar month the interval
   covers at least half of (SWAP_SHARE) is rebuilt: its staged rows are loaded, already stamped
   with the run id and `_computed_at`, into a fresh table, the month's stored rows outside the
   interval are copied next to them, then the primary key is built by one sort, which costs a
   fraction of inserting the rows one by one into a live index. The rest (short ends of the
   interval inside a month, and everything on TimescaleDB) is one piece loaded into an
   unlogged scratch table, timestamps as epoch µs.
3. One transaction: that rest's ranges are deleted and its rows inserted from the scratch
   table; each rebuilt month's old partition is detached and dropped and its fresh table
   attached in its place (a CHECK constraint on `feature_ts` spares the attach a scan). The
   entities a piece removes (rows deleted in its range, none put back) are queued for the
   materializer (changes.py) in the same transaction.

A crash anywhere before the commit leaves the previous rows untouched (the transaction rolls
back; scratch tables left by a killed publish are dropped by the next publish of the table).
Coverage is extended by the caller only after the commit.

Crash hook for tests: `JSTORE_CRASH_AT=publish:after_delete` kills the process (SIGKILL) after
the old rows are deleted (or the old partitions detached) and before the new ones are in.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from jstore.arrow_types import ARROW_TYPES
from jstore.durations import iso
from jstore.model import ResolvedView
from jstore.offline.arrow_copy import from_epoch_us, wire_type
from jstore.offline.changes import PUBLISHED, REMOVED, queue_id, replace_interval
from jstore.offline.tables import (
    MAX_IDENTIFIER,
    TableLayout,
    lock_key,
    months_between,
    next_month,
    partition_name,
    table_id,
    value_columns,
)
from jstore.staging import StagedRun, staged_dtypes, staged_schema

CRASH_ENV = "JSTORE_CRASH_AT"
SCRATCH_MARK = "__load_"
BATCH_ROWS = 65_536
INDEX_MEMORY = "256MB"
SWAP_SHARE = 0.5
"""A month whose partition is rebuilt: the interval covers at least this share of it. Below,
copying the month's other rows would cost more than inserting the new ones into its index."""


class StagedRunRejected(ValueError):
    """A staged run that does not fit its view or its interval; nothing was published."""


def crash_point(name: str) -> None:
    """Die here, like a killed worker, when the test hook `JSTORE_CRASH_AT` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Piece:
    """Parts [start, end) of the interval, with the scratch table their rows are loaded into.

    A piece with a `month` (plain PostgreSQL) replaces that month's partition, named
    `partition`, and has one range, the part of the month the interval covers; the piece
    without is the rest of the interval, deleted and inserted.
    """

    ranges: list[tuple[datetime, datetime]]
    scratch: str
    month: tuple[datetime, datetime] | None = None
    partition: str | None = None


def publish_interval(
    conn: psycopg.Connection,
    layout: TableLayout,
    view: ResolvedView,
    staged: StagedRun,
    dsn: str,
) -> int:
    """Replace [staged.start, staged.end) of the view's table by the staged rows; returns rows.

    `conn` is in autocommit mode; `dsn` opens the ADBC connection that loads the rows.
    """
    if (staged.view, staged.version) != (view.name, view.version):
        raise StagedRunRejected(
            f"staged run {staged.run_id!r} is {staged.view} v{staged.version}, "
            f"not {view.name} v{view.version}"
        )
    key = lock_key(layout.schema, view.table)
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
    try:
        _drop_scratch(conn, layout.schema, view)
        layout.ensure_partitions(conn, view, staged.start, staged.end)
        computed_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
        pieces = _pieces(layout, view, staged)
        rows = _load(conn, layout.schema, view, staged, pieces, computed_at, dsn)
        with conn.transaction():
            conn.execute("SET LOCAL jit = off")  # compiling these plans costs more than it saves
            for piece in pieces:
                if piece.month is None:
                    _replace_rows(conn, layout.schema, view, staged, piece, computed_at)
                else:
                    _swap_partition(conn, layout.schema, view, piece, computed_at)
    finally:
        _drop_scratch(conn, layout.schema, view)
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
    return rows


def _pieces(layout: TableLayout, view: ResolvedView, staged: StagedRun) -> list[Piece]:
    """The months the interval covers at least SWAP_SHARE of (plain PostgreSQL), then one
    piece for the rest, if any."""
    if layout.hypertables:
        return [Piece([(staged.start, staged.end)], _scratch_name(view))]
    pieces, rest = [], []
    for month in months_between(staged.start, staged.end):
        bounds = (month, next_month(month))
        covered = (max(staged.start, month), min(staged.end, bounds[1]))
        if covered[1] - covered[0] >= SWAP_SHARE * (bounds[1] - month):
            name = partition_name(view.table, month)
            pieces.append(Piece([covered], _scratch_name(view), bounds, name))
        else:
            rest.append(covered)
    return pieces + ([Piece(rest, _scratch_name(view))] if rest else [])


def _scratch_name(view: ResolvedView) -> str:
    tag = uuid.uuid4().hex[:8]
    return f"{view.table[: MAX_IDENTIFIER - len(SCRATCH_MARK) - len(tag)]}{SCRATCH_MARK}{tag}"


def _drop_scratch(conn: psycopg.Connection, schema: str, view: ResolvedView) -> None:
    """Drop this table's scratch tables (left by this publish, or by one that was killed)."""
    prefix = _scratch_name(view)[:-8].replace("\\", "\\\\").replace("_", "\\_")
    names = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE %s AND NOT c.relispartition",
        [schema, prefix + "%"],
    ).fetchall()
    for (name,) in names:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, name)))


def _load(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    staged: StagedRun,
    pieces: list[Piece],
    computed_at: datetime,
    dsn: str,
) -> int:
    """Create each piece's scratch table and fill it by binary COPY; returns the rows loaded.

    A month's table gets the table's own columns, a CHECK on its month, the run's id and
    `_computed_at` as column defaults while it loads (constants filled in by the server, not
    sent with every row) and, after the load, the table's indexes: it is ready to be attached.
    The other piece's table is unlogged and has only the staged columns (timestamps as epoch
    µs), which `replace_interval` matches against.
    """
    target = table_id(schema, view)
    rows = 0
    with adbc.connect(dsn) as loader:
        for piece in pieces:
            scratch = sql.Identifier(schema, piece.scratch)
            if piece.month is None:
                conn.execute(
                    sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
                        scratch,
                        sql.SQL(", ").join(
                            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(wire_type(d)))
                            for c, d in staged_dtypes(view).items()
                        ),
                    )
                )
                batches = (_timestamps_as_int(b) for b in _batches(view, staged, piece))
                schema_out = _wire_schema(view)
            else:
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} (LIKE {}, CHECK (feature_ts >= {} AND feature_ts < {}))"
                    ).format(scratch, target, *map(sql.Literal, piece.month))
                )
                _run_defaults(
                    conn, scratch, {"_run_id": staged.run_id, "_computed_at": computed_at}
                )
                batches = _batches(view, staged, piece)
                schema_out = staged_schema(view)
            counted = _Counted(batches)
            reader = pa.RecordBatchReader.from_batches(schema_out, iter(counted))
            with loader.cursor() as cursor:
                cursor.adbc_ingest(piece.scratch, reader, mode="append", db_schema_name=schema)
            if counted.rejected is not None:
                raise counted.rejected
            loader.commit()
            rows += counted.rows
            if piece.month is not None:
                _run_defaults(conn, scratch, {"_run_id": None, "_computed_at": None})
                _keep_other_rows(conn, schema, piece)
                _index_like_the_table(conn, scratch, view)
    return rows


def _run_defaults(conn: psycopg.Connection, table: sql.Identifier, values: dict) -> None:
    """Set (or, for None, drop) the defaults of the run columns."""
    conn.execute(
        sql.SQL("ALTER TABLE {} {}").format(
            table,
            sql.SQL(", ").join(
                sql.SQL("ALTER COLUMN {} {}").format(
                    sql.Identifier(name),
                    sql.SQL("DROP DEFAULT")
                    if value is None
                    else sql.SQL("SET DEFAULT {}").format(sql.Literal(value)),
                )
                for name, value in values.items()
            ),
        )
    )


def _keep_other_rows(conn: psycopg.Connection, schema: str, piece: Piece) -> None:
    """Copy the month's stored rows outside the piece's range into its new table."""
    assert piece.partition is not None
    if piece.ranges[0] == piece.month:
        return
    conn.execute(
        sql.SQL(
            "INSERT INTO {} SELECT * FROM {} WHERE NOT (feature_ts >= %s AND feature_ts < %s)"
        ).format(sql.Identifier(schema, piece.scratch), sql.Identifier(schema, piece.partition)),
        list(piece.ranges[0]),
    )


def _index_like_the_table(
    conn: psycopg.Connection, scratch: sql.Identifier, view: ResolvedView
) -> None:
    """The indexes the attach will adopt as the partition's: primary key and `_computed_at`."""
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(INDEX_MEMORY)))
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
            scratch, sql.SQL(", ").join(map(sql.Identifier, [*view.join_keys, "feature_ts"]))
        )
    )
    conn.execute(sql.SQL("CREATE INDEX ON {} (_computed_at)").format(scratch))
    conn.execute(sql.SQL("RESET maintenance_work_mem"))


def _replace_rows(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    staged: StagedRun,
    piece: Piece,
    computed_at: datetime,
) -> None:
    """Delete the piece's ranges (queueing what that removes) and insert its scratch rows."""
    scratch = sql.Identifier(schema, piece.scratch)
    dtypes = staged_dtypes(view)
    for start, end in piece.ranges:  # the DELETE, and what it removed queued for materialize
        replace_interval(conn, schema, view, start, end, computed_at, scratch)
    crash_point("publish:after_delete")
    values = sql.SQL(", ").join(
        from_epoch_us(sql.Identifier(c)) if d == "timestamp" else sql.Identifier(c)
        for c, d in dtypes.items()
    )
    conn.execute(
        sql.SQL("INSERT INTO {} ({}, _run_id, _computed_at) SELECT {}, %s, %s FROM {}").format(
            table_id(schema, view),
            sql.SQL(", ").join(map(sql.Identifier, dtypes)),
            values,
            scratch,
        ),
        [staged.run_id, computed_at],
    )


def _queue_removed(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    old: sql.Identifier,
    new: sql.Identifier,
    bounds: tuple[datetime, datetime],
    computed_at: datetime,
) -> None:
    """Queue for the materializer the entities with rows in `old` within `bounds` and none in
    `new` there: EXCEPT, one hashed pass over each side (an anti-join probed per old row
    measured 6x slower)."""
    keys = sql.SQL(", ").join(map(sql.Identifier, view.join_keys))
    conn.execute(
        sql.SQL(
            "INSERT INTO {removed} ({keys}, _computed_at) SELECT {keys}, %(computed_at)s "
            "FROM (SELECT {keys} FROM {old} WHERE feature_ts >= %(start)s AND feature_ts < %(end)s "
            "EXCEPT SELECT {keys} FROM {new} WHERE feature_ts >= %(start)s "
            "AND feature_ts < %(end)s) gone"
        ).format(removed=queue_id(schema, view, REMOVED), keys=keys, old=old, new=new),
        {"computed_at": computed_at, "start": bounds[0], "end": bounds[1]},
    )


def _swap_partition(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    piece: Piece,
    computed_at: datetime,
) -> None:
    """Replace a month's partition by the piece's loaded and indexed table.

    Detaching takes the parent table's ACCESS EXCLUSIVE lock until the commit, which follows
    at once: nothing is scanned or built while it is held.
    """
    assert piece.partition is not None and piece.month is not None
    (start, end), target = piece.ranges[0], table_id(schema, view)
    old = sql.Identifier(schema, piece.partition)
    new = sql.Identifier(schema, piece.scratch)
    replaced = conn.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE feature_ts >= %s AND feature_ts < %s)"
        ).format(old),
        [start, end],
    ).fetchone()
    if replaced and replaced[0]:  # a first publish into the month has nothing to remove
        _queue_removed(conn, schema, view, old, new, (start, end), computed_at)
    conn.execute(
        sql.SQL("INSERT INTO {} VALUES (%s)").format(queue_id(schema, view, PUBLISHED)),
        [computed_at],
    )
    conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(target, old))
    conn.execute(sql.SQL("DROP TABLE {}").format(old))
    crash_point("publish:after_delete")
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(new, sql.Identifier(piece.partition))
    )
    conn.execute(  # `old` names the new table now
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            target, old, *map(sql.Literal, piece.month)
        )
    )


def _wire_schema(view: ResolvedView) -> pa.Schema:
    return pa.schema(
        [
            (c, pa.int64() if d == "timestamp" else ARROW_TYPES[d])
            for c, d in staged_dtypes(view).items()
        ]
    )


def _timestamps_as_int(batch: pa.RecordBatch) -> pa.RecordBatch:
    arrays = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


class _Counted:
    """Batches passed through, counting their rows. A rejection stops the stream and is kept
    (raised through ADBC's reader it would come back wrapped in a driver error)."""

    def __init__(self, batches: Iterator[pa.RecordBatch]):
        self._batches = batches
        self.rows = 0
        self.rejected: StagedRunRejected | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self._batches:
                self.rows += batch.num_rows
                yield batch
        except StagedRunRejected as e:
            self.rejected = e


def _batches(view: ResolvedView, staged: StagedRun, piece: Piece) -> Iterator[pa.RecordBatch]:
    """The staged rows in the piece's ranges, as batches of the staged columns; a row outside
    the run's interval is refused (every load reads every row, so each one is checked)."""
    columns = value_columns(view)
    schema = staged_schema(view)
    start, end = (pa.scalar(t, ARROW_TYPES["timestamp"]) for t in (staged.start, staged.end))
    everything = piece.ranges == [(staged.start, staged.end)]
    for path in staged.parquet_files:
        parquet = pq.ParquetFile(path.path, filesystem=path.fs)
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
                    f"[{iso(staged.start)}, {iso(staged.end)})"
                )
            if not everything:
                batch = batch.filter(_in_ranges(ts, piece.ranges))
            yield batch


def _in_ranges(ts: pa.Array, ranges: list[tuple[datetime, datetime]]) -> pa.Array:
    scalar = ARROW_TYPES["timestamp"]
    inside = [
        pc.and_(pc.greater_equal(ts, pa.scalar(s, scalar)), pc.less(ts, pa.scalar(e, scalar)))
        for s, e in ranges
    ]
    return inside[0] if len(inside) == 1 else pc.or_(*inside)
