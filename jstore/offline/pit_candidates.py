"""The stored rows a point-in-time join may match, fetched for the as-of match in numpy.

The entity rows of one view are reduced to *spans*: per key tuple and checkpoint period asked,
the period's start C and the last time T asked in it (the only stored rows an entity row at T
can use are in [C(T), T]: every non-empty entity has a row at each checkpoint). The spans go to
PostgreSQL once, by binary COPY (binary_copy.py's encoder, about half ADBC's client CPU), into
an UNLOGGED table of the offline schema (`SpanTables`) that the queries of every view of the
same keys and checkpoint period read, each on its own connection. A span table row holds a key's
run of periods (pit_spans.span_rows: the periods asked within one chunk of CHUNK_PERIODS, their
last times asked in an array), not one span: at 1M entity rows over 100,000 keys and 30 days,
150,000 rows instead of 860,000, so the load, the statistics and the hash the server builds are
that much smaller. With many rows the server hashes them on (keys, chunk) and scans the view's
table once, with parallel workers (a temporary table would forbid them, and would be loaded once
per connection), keeping a stored row when its time is at or before its period's entry; with few
it seeks the primary key per row, within the row's first period's start and last time asked. The
rows come back as Arrow by binary COPY (ADBC): nothing is formatted or parsed as text, so a text
feature `NA` or `null` stays text and a null stays null.

A span table lives as long as its join: it is dropped when the join's candidates are fetched.
While it lives, its join holds a session advisory lock named after it; a table whose lock is
free belongs to a join that was killed, and the next join in the schema drops it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.binary_copy import copy_in
from jstore.offline.tables import PG_TYPES, table_id

CODE = "_code"
CHUNK = "_chunk"
FIRST = "_first"
LAST = "_last"
LASTS = "_lasts"
CHUNK_PERIODS = 64
"""A span table row's periods lie in one chunk of this many checkpoint periods, counted from the
earliest period the join asks (64 days for a daily period): the server hashes span table rows
on (keys, chunk), or on the keys alone when all lie in one chunk."""
SPAN_TABLE_PREFIX = "_jstore_join_spans_"
SESSION_SETTINGS = ("SET jit = off", "SET random_page_cost = 1.5")
"""The candidate queries' planner settings. JIT off: compiling the plan costs more than it
saves. A random page read costed at 1.5 sequential reads instead of PostgreSQL's default of 4
(a spinning disk's): on an SSD, or for a table in memory, a seek costs about what a read in
sequence does, and with few span table rows the planner then seeks the primary key per row
instead of scanning the whole table. Measured on bench_export.py's data (user_purchases' 2M
rows): 10,000 entity rows 0.34 s (1.1: 0.22-0.29; 4: 0.54-0.56), 100,000 0.95 s (1.1:
0.79-0.92; 4: 1.04-1.18); at 1M entity rows (150,000 span table rows) 1.5 still hashes over one
scan, where 1.1 seeks 150,000 times, as fast here with the table cached, slower from a disk."""
LOAD_BATCH_ROWS = 4_096
"""Span table rows encoded at a time: the encoded bytes held stay a few MB."""


class SpanTables:
    """The span tables of one join, in `schema`, dropped on exit (see the module docstring)."""

    def __init__(self, dsn: str, schema: str):
        self.dsn = dsn
        self.schema = schema
        self._owner = psycopg.connect(dsn, autocommit=True)
        self._names: list[str] = []
        _drop_orphans(self._owner, schema)

    def __enter__(self) -> SpanTables:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._owner:
            for name in self._names:
                self._owner.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.schema, name))
                )
                self._owner.execute(
                    "SELECT pg_advisory_unlock(hashtext(%s))", [_lock_key(self.schema, name)]
                )

    def load(self, view: ResolvedView, spans: Iterable[pa.Table]) -> SpanTable:
        """A new span table holding `spans` (tables of pit_spans.span_rows, loaded one after
        the other: one key code range's at a time)."""
        name = SPAN_TABLE_PREFIX + uuid.uuid4().hex[:16]
        self._owner.execute("SELECT pg_advisory_lock(hashtext(%s))", [_lock_key(self.schema, name)])
        self._names.append(name)
        types = {
            CODE: "bigint",
            **{k: PG_TYPES[view.key_dtypes[k]] for k in view.join_keys},
            CHUNK: "timestamptz",
            FIRST: "timestamptz",
            LAST: "timestamptz",
            LASTS: "timestamptz[]",
        }
        columns = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in types.items()]
        table = sql.Identifier(self.schema, name)
        self._owner.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(table, sql.SQL(", ").join(columns))
        )
        parts: list[dict[str, pa.Scalar]] = []
        loaded = list(types)

        def batches() -> Iterator[pa.RecordBatch]:
            for part in spans:
                parts.append({c: pc.min_max(part[c]) for c in (FIRST, LAST, CHUNK)})
                yield from part.select(loaded).to_batches(LOAD_BATCH_ROWS)

        with psycopg.connect(self.dsn) as conn:
            copy_in(conn, table, loaded, batches())
        # Without statistics the planner may seek per row; those of the hashed columns are
        # enough (LASTS' element statistics cost more than the rest of the table's).
        analyzed = [sql.Identifier(c) for c in (*view.join_keys, CHUNK)]
        self._owner.execute(sql.SQL("ANALYZE {} ({})").format(table, sql.SQL(", ").join(analyzed)))

        def ends(column: str, end: str) -> list[datetime]:
            """Each part's `end` ("min" or "max") of `column`, where the part has rows."""
            return [t for part in parts if (t := part[column][end].as_py()) is not None]

        bounds = (min(ends(FIRST, "min"), default=None), max(ends(LAST, "max"), default=None))
        chunks = (min(ends(CHUNK, "min"), default=None), max(ends(CHUNK, "max"), default=None))
        return SpanTable(self.dsn, self.schema, name, bounds, chunks)


@dataclass(frozen=True)
class SpanTable:
    """One loaded span table: the spans of the views of one join key tuple and period."""

    dsn: str
    schema: str
    name: str
    bounds: tuple[datetime | None, datetime | None]
    """The spans' earliest FIRST and latest LAST (None without spans)."""
    chunks: tuple[datetime | None, datetime | None]
    """The spans' earliest and latest CHUNK (None without spans): every CHUNK is a whole number
    of chunks from the earliest. When they are the same, the keys alone match a stored row to
    its span table rows, and the server computes no chunk per stored row."""

    def rows(self, view: ResolvedView, features: list[FeatureSpec]) -> pa.Table:
        """Per span, the view's rows with FIRST <= feature_ts <= LAST: a table of CODE,
        feature_ts and the features (on a connection of its own)."""
        with adbc.connect(self.dsn) as conn, conn.cursor() as cursor:
            self._execute(cursor, view, features)
            return cursor.fetch_arrow_table()

    def row_batches(
        self, view: ResolvedView, features: list[FeatureSpec]
    ) -> Iterator[pa.RecordBatch]:
        """The rows of `rows`, streamed in batches as the server sends them."""
        with adbc.connect(self.dsn) as conn, conn.cursor() as cursor:
            self._execute(cursor, view, features)
            yield from cursor.fetch_record_batch()

    def _execute(
        self, cursor: adbc.Cursor, view: ResolvedView, features: list[FeatureSpec]
    ) -> None:
        for setting in SESSION_SETTINGS:
            cursor.execute(setting)
        cursor.execute(self.query(view, features).as_string(None))

    def query(self, view: ResolvedView, features: list[FeatureSpec]) -> sql.Composed:
        """The rows of every span: a hash join on (keys, chunk) over one scan of the
        partitions within `bounds` (constants the planner prunes partitions by), or one
        primary-key range scan per span table row when they are few. When the spans lie in
        one chunk, on the keys alone: computing each stored row's chunk measured 10% of the
        query's server time. A row is kept when its time is at or before the last time asked
        in its period (LASTS, indexed by the whole days from FIRST, a period's start, divided
        by the period's days: a checkpoint period is whole days, and a difference of
        timestamps counts whole days as days, so the index is exact; a row before FIRST fails
        the condition beside it)."""
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in view.join_keys
        )
        selected = [sql.Identifier("s", CODE), sql.Identifier("t", "feature_ts")]
        selected += [sql.Identifier("t", spec.name) for spec in features]
        period = int(view.definition.checkpoint_period.total_seconds())
        if self.chunks[0] != self.chunks[1]:
            match = sql.SQL("{} AND date_bin({}, t.feature_ts, {}) = s.{}").format(
                match,
                sql.Literal(f"{period * CHUNK_PERIODS} seconds"),
                sql.Literal(self.chunks[0]),
                sql.Identifier(CHUNK),
            )
        return sql.SQL(
            "SELECT {selected} FROM {spans} s JOIN {table} t ON {match} "
            "AND t.feature_ts >= s.{first} AND t.feature_ts <= s.{last} "
            "AND t.feature_ts <= s.{lasts}[date_part('day', t.feature_ts - s.{first})::int "
            "/ {days} + 1] "
            "AND t.feature_ts >= {low} AND t.feature_ts <= {high}"
        ).format(
            selected=sql.SQL(", ").join(selected),
            spans=sql.Identifier(self.schema, self.name),
            table=table_id(self.schema, view),
            match=match,
            first=sql.Identifier(FIRST),
            last=sql.Identifier(LAST),
            lasts=sql.Identifier(LASTS),
            days=sql.Literal(period // 86400),
            low=sql.Literal(self.bounds[0] or "-infinity"),
            high=sql.Literal(self.bounds[1] or "infinity"),
        )


def _lock_key(schema: str, name: str) -> str:
    return f"jstore.offline:{schema}.{name}"


def _drop_orphans(conn: psycopg.Connection, schema: str) -> None:
    """Drop the span tables of killed joins: those whose advisory lock no session holds."""
    pattern = SPAN_TABLE_PREFIX.replace("_", "\\_") + "%"
    names = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname LIKE %s",
        [schema, pattern],
    ).fetchall()
    for (name,) in names:
        key = _lock_key(schema, name)
        if conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key]).fetchone()[0]:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, name)))
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
