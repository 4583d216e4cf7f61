"""The offline table of a view version: its shape, and how it is split by time.

`<offline_schema>.<view>__v<N>(join keys…, feature_ts, features…, _run_id, _computed_at)`,
primary key (join keys, feature_ts). The primary key's index is the one every read uses: the
point-in-time join and `latest_for_entities` seek the latest row per entity through it.

Text join keys are `COLLATE "C"`: keys are only ever matched for equality (which is bytewise under
every deterministic collation) and their order means nothing to any read, while the primary key's
build and every insert into it compare keys, and the database's own collation would do it with
`strcoll` (and without abbreviated sort keys): building a month's primary key costs about half.
`_computed_at` has a BRIN index (a summary of each 128 pages' stamps): the materializer's and
`changed_since`'s reads by stamp need no more, since a publish's rows are appended together, and
a BRIN index costs nothing per inserted row where a btree wrote an entry per row. Tables created
before keep their collation and their btree index; publish copies whatever indexes a table has.

Two layouts, chosen once per database by `TableLayout.for_connection` (is the `timescaledb`
extension installed?):
- TimescaleDB: a hypertable chunked by feature_ts (about `STEPS_PER_CHUNK` steps a chunk),
  compressed segment-by the join keys and ordered by feature_ts desc, with a compression policy.
  Retention is JStore's own (retention.py), on both layouts.
- Plain PostgreSQL: declarative range partitions by feature_ts, one per calendar month (UTC),
  created by `ensure_partitions` before a publish inserts rows into them. There is no DEFAULT
  partition on purpose: rows there would make every later CREATE … PARTITION OF scan it and fail
  on an overlap, and publish never needs one because it creates its months first. An insert
  outside every partition fails loudly instead of landing somewhere unplanned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from jstore.model import ResolvedView
from jstore.staging import staged_dtypes

PG_TYPES = {
    "string": "text",
    "int64": "bigint",
    "float64": "double precision",
    "bool": "boolean",
    "timestamp": "timestamptz",
}
META_COLUMNS = ("_run_id", "_computed_at")
STEPS_PER_CHUNK = 168
MIN_CHUNK = timedelta(days=1)
MAX_CHUNK = timedelta(days=30)
MAX_IDENTIFIER = 63
KEY_COLLATION = "C"


def table_id(schema: str, view: ResolvedView) -> sql.Composed:
    return sql.Identifier(schema, view.table)


def column_types(view: ResolvedView) -> dict[str, str]:
    """PostgreSQL type of every column of the table, in table order: a staged row's, then the
    run's stamp."""
    types = {name: PG_TYPES[dtype] for name, dtype in staged_dtypes(view).items()}
    types.update({"_run_id": "text", "_computed_at": "timestamptz"})
    return types


def lock_key(schema: str, table: str) -> str:
    """Advisory-lock name serialising DDL and publishes of one table."""
    return f"jstore.offline:{schema}.{table}"


def chunk_interval(step: timedelta) -> timedelta:
    return min(max(step * STEPS_PER_CHUNK, MIN_CHUNK), MAX_CHUNK)


def month_start(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    return datetime(ts.year, ts.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def months_between(start: datetime, end: datetime) -> list[datetime]:
    """The first instants of the calendar months overlapping [start, end)."""
    months, month = [], month_start(start)
    while month < end:
        months.append(month)
        month = next_month(month)
    return months


def side_table_id(schema: str, view: ResolvedView, suffix: str) -> sql.Identifier:
    """`<schema>.<side_table_name>`."""
    return sql.Identifier(schema, side_table_name(view, suffix))


def side_table_name(view: ResolvedView, suffix: str) -> str:
    """`<table><suffix>`, a table kept beside the view's (`__published`, `__files`); a long
    table name is cut and given a digest, like partitions."""
    name = f"{view.table}{suffix}"
    if len(name) > MAX_IDENTIFIER:
        digest = hashlib.sha1(view.table.encode()).hexdigest()[:8]
        name = f"{view.table[: MAX_IDENTIFIER - len(suffix) - 9]}_{digest}{suffix}"
    return name


def partition_name(table: str, month: datetime) -> str:
    name = f"{table}__p{month:%Y%m}"
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    return f"{table[: MAX_IDENTIFIER - 18]}_{digest}__p{month:%Y%m}"


@dataclass(frozen=True)
class TableLayout:
    """How the tables of one database are split by time.

    `hypertables` is the one capability that changes the layout; it is checked once per
    connection from `pg_extension`, never probed by trying TimescaleDB calls.
    """

    schema: str
    hypertables: bool

    @classmethod
    def for_connection(cls, conn: psycopg.Connection, schema: str) -> TableLayout:
        installed = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
        ).fetchone()
        return cls(schema=schema, hypertables=bool(installed and installed[0]))

    def create(self, conn: psycopg.Connection, view: ResolvedView) -> None:
        """Create the view version's table if missing (idempotent, safe when run concurrently),
        and its files table (published_files.py) with it: only a table that has had one from
        its first row can be read from the staged files."""
        from jstore.offline.published_files import create_files_table  # it imports this module

        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"jstore.offline:{self.schema}"]
            )
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            if self.exists(conn, view):
                return
            conn.execute(self._create_table(view))
            conn.execute(
                sql.SQL("CREATE INDEX ON {} USING brin (_computed_at)").format(
                    table_id(self.schema, view)
                )
            )
            if self.hypertables:
                self._make_hypertable(conn, view)
            create_files_table(conn, self.schema, view)

    def ensure_partitions(
        self, conn: psycopg.Connection, view: ResolvedView, start: datetime, end: datetime
    ) -> None:
        """Create the monthly partitions [start, end) will write to (plain PostgreSQL only).

        Its own short transaction, before the publish's: creating a partition locks the parent
        table, which must not last as long as a publish. An unused empty partition is harmless.
        """
        if self.hypertables:
            return
        missing = [
            month
            for month in months_between(start, end)
            if not self._relation_exists(conn, partition_name(view.table, month))
        ]
        if not missing:
            return
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [lock_key(self.schema, view.table)]
            )
            for month in missing:
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
                    ).format(
                        sql.Identifier(self.schema, partition_name(view.table, month)),
                        table_id(self.schema, view),
                        sql.Literal(month),
                        sql.Literal(next_month(month)),
                    )
                )

    def exists(self, conn: psycopg.Connection, view: ResolvedView) -> bool:
        return self._relation_exists(conn, view.table)

    def _relation_exists(self, conn: psycopg.Connection, name: str) -> bool:
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            [sql.Identifier(self.schema, name).as_string(conn)],
        ).fetchone()
        return bool(row and row[0])

    def _create_table(self, view: ResolvedView) -> sql.Composed:
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}{}").format(
                sql.Identifier(name),
                sql.SQL(pg_type),
                sql.SQL(" COLLATE {}").format(sql.Identifier(KEY_COLLATION))
                if name in view.join_keys and pg_type == "text"
                else sql.SQL(""),
            )
            + sql.SQL(" NOT NULL" if name in (*view.join_keys, "feature_ts", *META_COLUMNS) else "")
            for name, pg_type in column_types(view).items()
        )
        primary_key = sql.SQL(", ").join(map(sql.Identifier, [*view.join_keys, "feature_ts"]))
        partitioning = sql.SQL("" if self.hypertables else " PARTITION BY RANGE (feature_ts)")
        return sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({})){}").format(
            table_id(self.schema, view), columns, primary_key, partitioning
        )

    def _make_hypertable(self, conn: psycopg.Connection, view: ResolvedView) -> None:
        name = table_id(self.schema, view).as_string(conn)
        interval = chunk_interval(view.definition.step)
        conn.execute(
            "SELECT create_hypertable(%s::regclass, 'feature_ts', chunk_time_interval => %s)",
            [name, interval],
        )
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = {}, "
                "timescaledb.compress_orderby = 'feature_ts DESC')"
            ).format(
                table_id(self.schema, view),
                sql.Literal(",".join(sql.Identifier(k).as_string(conn) for k in view.join_keys)),
            )
        )
        conn.execute(
            "SELECT add_compression_policy(%s::regclass, compress_after => %s)",
            [name, interval * 2],
        )
