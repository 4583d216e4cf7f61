"""The database a table source is read from, checked before Spark starts.

A `TableSource` names where its credentials are, never the credentials: `connection` (an Airflow
Connection id), `dsn_env` (an environment variable holding a DSN), or neither (the offline
store's database). `source_dsn` resolves that in the launcher; the DSN reaches the Spark job in
its environment (`SOURCE_DSN_ENV`), never on its command line, and messages name a database by
its DSN with the password masked (`masked`).

`check_source_table` connects once and reads no row (`LIMIT 0`): an unreachable database, a
missing table and a missing or mistyped timestamp column are refused with a message naming them
instead of failing inside a Spark task.

`exported_snapshot` holds one snapshot of the database open while the job runs: every JDBC
partition of the read imports it (`SET TRANSACTION SNAPSHOT`), so the partitions, separate
queries on separate connections, see the table as of one instant, as a single query would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import psycopg
from psycopg import sql

from jstore.config import Settings
from jstore.model import TableSource

SOURCE_DSN_ENV = "EXTRACT_SOURCE_DSN"
"""The environment variable that carries the source's DSN into the extract's Spark job."""

CONNECT_TIMEOUT_S = 10

TIMESTAMP_TYPES = {"timestamptz", "timestamp", "date"}
"""Column types a JDBC read can be partitioned on as time."""


SNAPSHOT_ID = re.compile(r"^[0-9A-F]+(-[0-9A-F]+)+$")
"""What `pg_export_snapshot()` returns, e.g. `00000003-0000001B-1`."""


class SourceDatabaseError(ValueError):
    """A table source's database cannot be resolved or reached, or lacks its table or column."""


def masked(dsn: str) -> str:
    """The DSN with its password as `***`, fit for a message or a log line."""
    parsed = urlparse(dsn)
    if not parsed.password:
        return dsn
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def source_dsn(settings: Settings, source: TableSource) -> str:
    """The DSN of the database `source` is read from."""
    if source.connection is not None:
        from jstore.connections import airflow_connection, postgres_dsn

        try:
            conn = airflow_connection(source.connection)
        except ImportError:
            raise SourceDatabaseError(
                f"source {source.name!r}: connection: {source.connection!r} is an Airflow "
                "Connection, and Airflow is not installed here (name a DSN with dsn_env instead)"
            ) from None
        if conn is None:
            raise SourceDatabaseError(
                f"source {source.name!r}: connection: {source.connection!r} is not defined "
                "(no Airflow Connection of that id)"
            )
        return postgres_dsn(conn)
    if source.dsn_env is not None:
        dsn = os.environ.get(source.dsn_env, "")
        if not dsn:
            raise SourceDatabaseError(
                f"source {source.name!r}: dsn_env: the environment variable {source.dsn_env} "
                "is not set"
            )
        return dsn
    return settings.postgres_dsn.get_secret_value()


def _relation(source: TableSource) -> sql.Composable:
    if source.table is not None:
        return sql.Identifier(*source.table.split("."))
    return sql.SQL("({}) AS source").format(sql.SQL(source.query))  # type: ignore[arg-type]


def check_source_table(dsn: str, source: TableSource) -> None:
    """Connect to the source's database and check its table (or query) and timestamp column."""
    what = f"table {source.table}" if source.table else "its query"
    try:
        conn = psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    except psycopg.Error as e:
        raise SourceDatabaseError(
            f"source {source.name!r}: cannot connect to its database {masked(dsn)}: {e}"
        ) from None
    with conn:
        try:
            cursor = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(_relation(source)))
        except psycopg.Error as e:
            raise SourceDatabaseError(
                f"source {source.name!r}: {what} cannot be read in {masked(dsn)}: "
                f"{str(e).splitlines()[0]}"
            ) from None
        types = {
            column.name: conn.adapters.types.get(column.type_code)
            for column in cursor.description or []
        }
    column = source.timestamp_column
    if column not in types:
        raise SourceDatabaseError(
            f"source {source.name!r}: timestamp_column: {what} has no column {column!r} "
            f"(columns: {', '.join(types)})"
        )
    type_name = getattr(types[column], "name", "unknown")
    if type_name not in TIMESTAMP_TYPES:
        raise SourceDatabaseError(
            f"source {source.name!r}: timestamp_column: {column!r} of {what} is of type "
            f"{type_name}, not a timestamp"
        )


@contextmanager
def exported_snapshot(dsn: str) -> Iterator[str]:
    """The id of a snapshot of the database, importable by other sessions until the block ends
    (a read-only repeatable-read transaction kept open meanwhile)."""
    with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        yield row[0]
        conn.rollback()


def snapshot_statement(snapshot: str) -> str:
    """The statements that make a new transaction read `snapshot` (before its first query)."""
    if not SNAPSHOT_ID.match(snapshot):
        raise ValueError(f"snapshot: {snapshot!r} is not a snapshot id of pg_export_snapshot()")
    return (
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
        f"SET TRANSACTION SNAPSHOT '{snapshot}'"
    )
