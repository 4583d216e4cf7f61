"""Publish a staged run: its rows replace the view's rows in [start, end), in one transaction.

The staged rows go to PostgreSQL by binary COPY straight from Arrow, encoded by JStore's own
encoder (binary_copy.py: half the client CPU of ADBC's `adbc_ingest`, which it replaced), a
rebuilt month's on connections of their own, the rest on the connection that runs the
publish's transaction. Holding the table's advisory lock (a session lock on `conn`, from before
the load until after the commit, so publishes of one table run one at a time and
`_computed_at` grows in commit order):

1. The monthly partitions the interval needs are created (plain PostgreSQL; a short transaction
   of its own).
2. The interval is cut into pieces. On plain PostgreSQL, each calendar month the interval
   covers at least SWAP_SHARE of is rebuilt before the transaction: its staged rows are
   loaded by LOAD_STREAMS COPY streams, already stamped with the run id and `_computed_at`,
   into a fresh table, the month's stored rows outside the interval are copied next to them
   (meanwhile, on another connection), then a copy of each of the table's indexes is built,
   the primary key by one sort, which costs a fraction of inserting the rows one by one into a
   live index; the keys of the entities the month loses are found beside them. The rest (short
   ends of the interval inside a month, and everything on TimescaleDB) is one piece, replaced
   inside the transaction.
3. One transaction, on a connection of its own: the rest's ranges are deleted (the deleted keys,
   distinct, kept in a temporary table) and its rows copied straight into the live table with
   the run columns as constant columns; the deleted entities with no row back in the ranges
   are queued as removed (changes.py). Then each rebuilt month's old partition is detached and
   dropped and its fresh table attached in its place (a CHECK constraint on `feature_ts`
   spares the attach a scan), its removed entities queued likewise. The run is recorded as
   the one whose files hold [start, end) (published_files.py), first.

A crash anywhere before the commit leaves the previous rows untouched (the transaction rolls
back; scratch tables left by a killed publish are dropped by the next publish of the table).
Coverage is extended by the caller only after the commit.

Crash hook for tests: `JSTORE_CRASH_AT=publish:after_delete` kills the process (SIGKILL) after
the old rows are deleted (or the old partitions detached) and before the new ones are in.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from jstore.arrow_types import ARROW_TYPES
from jstore.durations import iso
from jstore.model import ResolvedView
from jstore.offline.binary_copy import copy_in
from jstore.offline.changes import (
    PUBLISHED,
    REMOVED,
    delete_ranges,
    keys_table,
    queue_changes,
    queue_id,
)
from jstore.offline.published_files import publishing, record_run
from jstore.offline.tables import (
    MAX_IDENTIFIER,
    TableLayout,
    lock_key,
    months_between,
    next_month,
    partition_name,
    table_id,
)
from jstore.staging import StagedRun, as_staged, staged_columns, staged_schema

CRASH_ENV = "JSTORE_CRASH_AT"
SCRATCH_MARK = "__load_"
GONE = "jstore_gone"
"""The temporary table of the keys a delete-and-insert publish deleted rows of."""
STAGED_KEYS = "jstore_staged_keys"
"""The temporary table of the distinct keys of the rows a delete-and-insert publish copies."""
BATCH_ROWS = 65_536
INDEX_MEMORY = "256MB"
LOAD_STREAMS = 2
"""Binary COPY streams loading a month's new table at once, each on a connection of its own:
a stream is one client thread encoding rows and one server backend storing them, neither busy
all the time, so two keep two cores busy (the table is not visible before the swap, so the
streams need not share a transaction)."""
KEEP_STREAMS = 2
"""Statements copying a rebuilt month's other stored rows at once, each over its share of the
old partition's pages: one was the longest part of a 10-day rebuild, leaving a core idle."""
SWAP_SHARE = 0.15
"""A month whose partition is rebuilt: the interval covers at least this share of it (4.65 days
of 31). Below, copying the month's other rows and sorting the whole month's key would cost more
than inserting the new rows into the live index (measured with 2M-row months: 3 days deleted
and inserted in 7-8.5 s against 16-18 s rebuilt, 6 days 25-29 s against 15-20 s, 10 days 41-47 s
against 19-24 s; inserting into the live index slows down more than in proportion, as the rows
and index pages it dirties outgrow the buffer cache)."""


class StagedRunRejected(ValueError):
    """A staged run that does not fit its view or its interval; nothing was published."""


def crash_point(name: str) -> None:
    """Die here, like a killed worker, when the test hook `JSTORE_CRASH_AT` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Piece:
    """Parts [start, end) of the interval.

    A piece with a `month` (plain PostgreSQL) replaces that month's partition, named
    `partition`, by the table `scratch` its rows are loaded into, and has one range, the part of
    the month the interval covers; the keys of the entities it removes go to the scratch table
    `removed` first. The piece without is the rest of the interval: its ranges are deleted and
    its rows copied into the live table, in the publish's transaction.
    """

    ranges: list[tuple[datetime, datetime]]
    scratch: str | None = None
    month: tuple[datetime, datetime] | None = None
    partition: str | None = None
    removed: str | None = None


def publish_interval(
    conn: psycopg.Connection,
    layout: TableLayout,
    view: ResolvedView,
    staged: StagedRun,
    dsn: str,
) -> int:
    """Replace [staged.start, staged.end) of the view's table by the staged rows; returns rows.

    `conn` is in autocommit mode; `dsn` opens the connections that load the rows and the one
    that runs the publish's transaction.
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
        with psycopg.connect(dsn) as tx:  # rolled back if anything below raises
            tx.execute("SET LOCAL jit = off")  # compiling these plans costs more than they run
            publishing(tx)
            record_run(tx, layout.schema, view, staged)  # before the swaps lock the table
            for piece in pieces:  # the rest first: the swaps lock the table until the end
                if piece.month is None:
                    rows += _replace_rows(tx, layout.schema, view, staged, piece, computed_at)
            for piece in pieces:
                if piece.month is not None:
                    _swap_partition(tx, layout.schema, view, piece, computed_at)
            tx.commit()
    finally:
        _drop_scratch(conn, layout.schema, view)
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
    return rows


def _pieces(layout: TableLayout, view: ResolvedView, staged: StagedRun) -> list[Piece]:
    """The months the interval covers at least SWAP_SHARE of (plain PostgreSQL), then one
    piece for the rest, if any."""
    if layout.hypertables:
        return [Piece([(staged.start, staged.end)])]
    pieces, rest = [], []
    for month in months_between(staged.start, staged.end):
        bounds = (month, next_month(month))
        covered = (max(staged.start, month), min(staged.end, bounds[1]))
        if covered[1] - covered[0] >= SWAP_SHARE * (bounds[1] - month):
            name = partition_name(view.table, month)
            pieces.append(Piece([covered], _scratch_name(view), bounds, name, _scratch_name(view)))
        else:
            rest.append(covered)
    return pieces + ([Piece(rest)] if rest else [])


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
    """Load each month piece's table by binary COPY and index it; returns the rows loaded.

    A month's table gets the table's own columns, a CHECK on its month, the run's id and
    `_computed_at` as column defaults while it loads (constants filled in by the server, not
    sent with every row), the month's stored rows outside the interval copied in by the server
    meanwhile (on a connection of its own: both only append to the table) and, after the load,
    the table's indexes: it is ready to be attached.
    """
    target = table_id(schema, view)
    rows = 0
    for piece in pieces:
        if piece.month is None:
            continue
        assert piece.scratch is not None
        scratch = sql.Identifier(schema, piece.scratch)
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (LIKE {}, CHECK (feature_ts >= {} AND feature_ts < {})) "
                "WITH (autovacuum_enabled = off)"
            ).format(scratch, target, *map(sql.Literal, piece.month))
        )
        _run_defaults(conn, scratch, {"_run_id": staged.run_id, "_computed_at": computed_at})
        staged_keys = (
            _DistinctKeys(view.join_keys, _batches(view, staged, piece))
            if _replaces_rows(conn, schema, piece)
            else None
        )
        counted = _Counted(staged_keys or _batches(view, staged, piece))
        batches = _Shared(iter(counted))
        keep = _keep_other_rows(conn, schema, piece)
        streams = [psycopg.connect(dsn) for _ in range(LOAD_STREAMS)]
        try:
            with ThreadPoolExecutor(LOAD_STREAMS + len(keep)) as pool:
                kept = [pool.submit(_run_apart, dsn, [statement]) for statement in keep]
                loads = [
                    pool.submit(copy_in, stream, scratch, staged_schema(view).names, batches)
                    for stream in streams
                ]
                for done in [*loads, *kept]:
                    done.result()
            for stream in streams:
                if counted.rejected is None:
                    stream.commit()
        finally:
            for stream in streams:
                stream.close()  # rolls back what was not committed
        if counted.rejected is not None:
            raise counted.rejected
        rows += counted.rows
        _run_defaults(conn, scratch, {"_run_id": None, "_computed_at": None})
        _index_and_find_removed(conn, schema, view, piece, dsn, staged_keys)
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


def _keep_other_rows(conn: psycopg.Connection, schema: str, piece: Piece) -> list[sql.Composed]:
    """The statements copying a month's stored rows outside the piece's range into its new
    table, each over its share of the old partition's pages (a TID range scan), to run side by
    side (none for a whole month, or for the piece that is not a month)."""
    if piece.partition is None or piece.ranges[0] == piece.month:
        return []
    old = sql.Identifier(schema, piece.partition)
    pages = conn.execute(
        "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int",
        [old.as_string(conn)],
    ).fetchone()[0]  # type: ignore[index]
    cuts = [None, *(pages * i // KEEP_STREAMS for i in range(1, KEEP_STREAMS)), None]
    start, end = map(sql.Literal, piece.ranges[0])
    statements = []
    for low, high in pairwise(cuts):
        pages_of = [
            sql.SQL("ctid {} {}::tid").format(sql.SQL(op), sql.Literal(f"({page},0)"))
            for op, page in ((">=", low), ("<", high))
            if page is not None
        ]
        statements.append(
            sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE {}").format(
                sql.Identifier(schema, piece.scratch),
                old,
                sql.SQL(" AND ").join(
                    [
                        *pages_of,
                        sql.SQL("NOT (feature_ts >= {} AND feature_ts < {})").format(start, end),
                    ]
                ),
            )
        )
    return statements


def _index_and_find_removed(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    piece: Piece,
    dsn: str,
    staged_keys: _DistinctKeys | None,
) -> None:
    """Build on the month's new table the indexes the attach will adopt as the partition's (a
    copy of each of the table's own: the primary key, `_computed_at`'s, any other) and find the
    entities the new table removes (`_find_removed`), all at once.

    Each is one backend's sort, scan or hash over the month, reading the new table or the old
    partition and writing nothing another reads (CREATE INDEX takes a SHARE lock, which lets
    the others read), so they run side by side on connections of their own. The publish's
    advisory lock keeps the old partition as it is until the swap.
    """
    assert piece.partition is not None and piece.removed is not None
    scratch = sql.Identifier(schema, piece.scratch)
    memory = sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(INDEX_MEMORY))
    indexes = _indexes(conn, table_id(schema, view))
    jobs = [
        [
            memory,
            sql.SQL("CREATE {}INDEX ON {} USING {}").format(
                sql.SQL("UNIQUE " if index.unique else ""), scratch, sql.SQL(index.shape)
            ),
        ]
        for index in indexes
    ]
    with ThreadPoolExecutor(len(jobs) + 1) as pool:
        running = [pool.submit(_run_apart, dsn, statements) for statements in jobs]
        running.append(pool.submit(_find_removed, dsn, schema, view, piece, staged_keys))
        for done in running:
            done.result()
    primary = next(index.shape for index in indexes if index.primary)
    built = next(index.name for index in _indexes(conn, scratch) if index.shape == primary)
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD PRIMARY KEY USING INDEX {}").format(
            scratch, sql.Identifier(built)
        )
    )


@dataclass(frozen=True)
class _Index:
    name: str
    shape: str
    """The part of its definition after USING (`btree (a, b)`), naming neither it nor its table."""
    unique: bool
    primary: bool


def _indexes(conn: psycopg.Connection, table: sql.Identifier) -> list[_Index]:
    rows = conn.execute(
        "SELECT c.relname, a.amname, pg_get_indexdef(i.indexrelid), i.indisunique, "
        "i.indisprimary FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = %s::regclass",
        [table.as_string(conn)],
    ).fetchall()
    return [
        _Index(name, _shape(method, definition), unique, primary)
        for name, method, definition, unique, primary in rows
    ]


def _shape(method: str, definition: str) -> str:
    """`CREATE INDEX <name> ON [ONLY] <table> USING btree (a, b)` -> `btree (a, b)`."""
    return definition[definition.index(f" USING {method} ") + len(" USING ") :]


def _replaces_rows(conn: psycopg.Connection, schema: str, piece: Piece) -> bool:
    """Whether the old partition has rows in the piece's range (not so for a first publish)."""
    assert piece.partition is not None
    found = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(
            sql.Identifier(schema, piece.partition), _in_range(piece)
        )
    ).fetchone()
    return bool(found and found[0])


def _in_range(piece: Piece) -> sql.Composed:
    start, end = piece.ranges[0]
    return sql.SQL("feature_ts >= {} AND feature_ts < {}").format(
        sql.Literal(start), sql.Literal(end)
    )


def _find_removed(
    dsn: str,
    schema: str,
    view: ResolvedView,
    piece: Piece,
    staged_keys: _DistinctKeys | None,
) -> None:
    """Fill the piece's `removed` table, on a connection of its own: the entities with rows in
    the old partition within the piece's range and no staged row, by EXCEPT of the staged
    rows' distinct keys (kept in Arrow while they loaded, a row per entity, loaded into a
    scratch table here) from the old rows' keys: one hashed pass over the old range and one
    over the keys, where EXCEPT from the new table's rows in the range hashed every new row
    again (an anti-join probed per old row measured 6x slower). Empty, reading nothing, when
    the old partition has no row there (`staged_keys` is None: a first publish into the
    month)."""
    assert piece.partition is not None and piece.removed is not None
    keys = sql.SQL(", ").join(map(sql.Identifier, view.join_keys))
    old = sql.Identifier(schema, piece.partition)
    removed = sql.Identifier(schema, piece.removed)
    old_keys = sql.SQL("SELECT {} FROM {} WHERE {}").format(keys, old, _in_range(piece))
    gone = sql.SQL("SELECT DISTINCT * FROM ({}) AS old_keys").format(old_keys)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if staged_keys is not None and staged_keys.seen():
            staged = sql.Identifier(schema, _scratch_name(view))
            conn.execute(
                sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
                    staged, keys, old
                )
            )
            copy_in(conn, staged, view.join_keys, staged_keys.table().to_batches())
            gone = sql.SQL("{} EXCEPT SELECT {} FROM {}").format(old_keys, keys, staged)
        conn.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} AS {} WITH {}").format(
                removed, gone, sql.SQL("NO DATA" if staged_keys is None else "DATA")
            )
        )


def _run_apart(dsn: str, statements: list[sql.Composed]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _replace_rows(
    tx: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    staged: StagedRun,
    piece: Piece,
    computed_at: datetime,
) -> int:
    """Delete the piece's ranges, COPY its rows straight into the live table, and queue what
    that changes; returns the rows copied.

    The rows are sent with the run id and `_computed_at` as constant columns: a column default
    on the live table would need its ACCESS EXCLUSIVE lock for the whole load.
    """
    gone, staged_keys = sql.Identifier(GONE), sql.Identifier(STAGED_KEYS)
    for statement in delete_ranges(schema, view, piece.ranges, gone):
        tx.execute(statement)
    crash_point("publish:after_delete")
    keys = _DistinctKeys(view.join_keys, _batches(view, staged, piece))
    counted = _Counted(_with_run_columns(b, staged.run_id, computed_at) for b in keys)
    copy_in(tx, table_id(schema, view), _live_schema(view).names, counted)
    if counted.rejected is not None:
        raise counted.rejected
    tx.execute(keys_table(schema, view, staged_keys))
    if keys.seen():
        copy_in(tx, staged_keys, view.join_keys, keys.table().to_batches())
    for statement in queue_changes(schema, view, computed_at, gone, staged_keys):
        tx.execute(statement)
    return counted.rows


def _swap_partition(
    tx: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    piece: Piece,
    computed_at: datetime,
) -> None:
    """Replace a month's partition by the piece's loaded and indexed table.

    Detaching takes the parent table's ACCESS EXCLUSIVE lock until the commit, which follows
    at once: nothing is scanned or built while it is held.
    """
    assert piece.partition is not None and piece.month is not None and piece.removed is not None
    assert piece.scratch is not None
    target = table_id(schema, view)
    old = sql.Identifier(schema, piece.partition)
    new = sql.Identifier(schema, piece.scratch)
    keys = sql.SQL(", ").join(map(sql.Identifier, view.join_keys))
    stamp = sql.Literal(computed_at)
    tx.execute(
        sql.SQL("INSERT INTO {} ({}, _computed_at) SELECT {}, {}::timestamptz FROM {}").format(
            queue_id(schema, view, REMOVED),
            keys,
            keys,
            stamp,
            sql.Identifier(schema, piece.removed),
        )
    )
    tx.execute(
        sql.SQL("INSERT INTO {} VALUES ({}::timestamptz)").format(
            queue_id(schema, view, PUBLISHED), stamp
        )
    )
    tx.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(target, old))
    tx.execute(sql.SQL("DROP TABLE {}").format(old))
    crash_point("publish:after_delete")
    tx.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(new, sql.Identifier(piece.partition)))
    tx.execute(  # `old` names the new table now
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            target, old, *map(sql.Literal, piece.month)
        )
    )
    # Kept from autovacuum while it was built: a worker on it would have held up the rename by
    # a deadlock_timeout (1 s) before being cancelled.
    tx.execute(sql.SQL("ALTER TABLE {} RESET (autovacuum_enabled)").format(old))


def _live_schema(view: ResolvedView) -> pa.Schema:
    """The staged columns, then the run columns: what is copied into the live table."""
    return (
        staged_schema(view)
        .append(pa.field("_run_id", pa.string()))
        .append(pa.field("_computed_at", ARROW_TYPES["timestamp"]))
    )


def _with_run_columns(batch: pa.RecordBatch, run_id: str, computed_at: datetime) -> pa.RecordBatch:
    n = batch.num_rows
    return pa.RecordBatch.from_arrays(
        [
            *batch.columns,
            pa.repeat(pa.scalar(run_id, pa.string()), n),
            pa.repeat(pa.scalar(computed_at, ARROW_TYPES["timestamp"]), n),
        ],
        names=[*batch.schema.names, "_run_id", "_computed_at"],
    )


class _DistinctKeys:
    """Batches passed through, keeping the distinct join keys they hold (a row per entity)."""

    def __init__(self, keys: list[str], batches: Iterator[pa.RecordBatch]):
        self._keys = keys
        self._batches = batches
        self._seen: list[pa.Table] = []

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self._batches:
            self._seen.append(self._distinct(pa.Table.from_batches([batch])))
            yield batch

    def seen(self) -> bool:
        return bool(self._seen)

    def table(self) -> pa.Table:
        """The distinct keys of every batch passed (once the batches are consumed)."""
        return self._distinct(pa.concat_tables(self._seen))

    def _distinct(self, table: pa.Table) -> pa.Table:
        return table.select(self._keys).group_by(self._keys).aggregate([]).select(self._keys)


class _Shared:
    """Batches drawn by several loading threads, one batch at a time each."""

    def __init__(self, batches: Iterator[pa.RecordBatch]):
        self._batches = batches
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self

    def __next__(self) -> pa.RecordBatch:
        with self._lock:
            return next(self._batches)


class _Counted:
    """Batches passed through, counting their rows. A rejection ends the batches and is kept,
    for the caller to raise once the COPY streams drawing them are done."""

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
    columns = staged_columns(view)
    schema = staged_schema(view)
    start, end = (pa.scalar(t, ARROW_TYPES["timestamp"]) for t in (staged.start, staged.end))
    everything = piece.ranges == [(staged.start, staged.end)]
    for path in staged.parquet_files:
        parquet = pq.ParquetFile(path.path, filesystem=path.fs)
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise StagedRunRejected(f"{path.name}: staged rows lack column {missing[0]!r}")
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            batch = as_staged(batch, schema)
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
