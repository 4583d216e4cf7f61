"""Retention: a view's rows older than its `retention` are dropped, and the entities left without
any row are queued for the materializer, in one transaction.

What a user sees: an entity whose every row is past the retention reads as an entity never seen,
offline (it has no latest row) and online (the next materialize deletes its Redis key, through
`<table>__removed`, as for a republish that removes an entity), so a lookup answers the
empty-window values, as for an unknown key; Feast's online store likewise answers "not found"
for an entity with no row within a feature view's ttl. An entity with a newer row keeps its
value: its latest row is not touched.

What is dropped: whole partitions, those that end at or before `now - retention` (plain
PostgreSQL's monthly partitions, TimescaleDB's chunks by `drop_chunks`), so rows are kept a little
longer than the retention, never shorter. Training sets count coverage older than
`now - retention` as not covered either way (export.published_coverage).

The files table's ranges lose what is dropped in the same transaction (published_files.py).

It runs after each publish of the view, holding the table's advisory lock (one publish or
retention at a time). TimescaleDB's own retention policy (a background job) is not used: it
drops chunks without queueing anything, which left the online store serving values whose rows
were gone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import psycopg
from psycopg import errors, sql

from jstore.model import ResolvedView
from jstore.offline.changes import REMOVED, queue_id
from jstore.offline.published_files import expire_before
from jstore.offline.tables import TableLayout, lock_key, next_month, table_id

PARTITION_MONTH = re.compile(r"__p(\d{4})(\d{2})$")
DEADLOCK_ATTEMPTS = 3
"""Times retention's transaction is tried when PostgreSQL aborts it to break a deadlock. On
TimescaleDB its `drop_chunks` and the compression policy's background job lock the same catalog
rows (`dimension_slice`) in opposite orders: seen on 2.26.4 when retention ran right after a
publish of old rows, which the job was compressing."""


def drop_expired(
    conn: psycopg.Connection, layout: TableLayout, view: ResolvedView, now: datetime
) -> int:
    """Drop the view's partitions (chunks) that end at or before `now - retention`, queueing the
    entities that had rows there and have none after; returns how many were dropped.

    `conn` is in autocommit mode. A view without `retention` keeps everything.
    """
    if view.definition.retention is None:
        return 0
    horizon = now - view.definition.retention
    key = lock_key(layout.schema, view.table)
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
    try:
        drop = _drop_chunks if layout.hypertables else _drop_partitions
        attempt = 1
        while True:
            try:
                return drop(conn, layout.schema, view, horizon)
            except errors.DeadlockDetected:  # its transaction rolled back whole: try it again
                if attempt == DEADLOCK_ATTEMPTS:
                    raise
                attempt += 1
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])


def _drop_partitions(
    conn: psycopg.Connection, schema: str, view: ResolvedView, horizon: datetime
) -> int:
    children = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        [table_id(schema, view).as_string(conn)],
    ).fetchall()
    expired = {}
    for (name,) in children:
        match = PARTITION_MONTH.search(name)
        if match:
            month = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
            if next_month(month) <= horizon:
                expired[name] = next_month(month)
    if not expired:
        return 0
    with conn.transaction():
        boundary = max(expired.values())  # the kept months start at or after it
        _queue_left_without_rows(conn, schema, view, boundary)
        expire_before(conn, schema, view, boundary)
        for name in expired:
            conn.execute(
                sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                    table_id(schema, view), sql.Identifier(schema, name)
                )
            )
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, name)))
    return len(expired)


def _drop_chunks(
    conn: psycopg.Connection, schema: str, view: ResolvedView, horizon: datetime
) -> int:
    """TimescaleDB: the chunks whose range ends at or before the horizon."""
    table = table_id(schema, view).as_string(conn)
    # Tables created before JStore ran retention itself carry TimescaleDB's background policy.
    conn.execute("SELECT remove_retention_policy(%s::regclass, if_exists => true)", [table])
    count, boundary = conn.execute(
        "SELECT count(*), max(range_end) FROM timescaledb_information.chunks "
        "WHERE hypertable_schema = %s AND hypertable_name = %s AND range_end <= %s",
        [schema, view.table, horizon],
    ).fetchone()  # type: ignore[misc]
    if not count:
        return 0
    with conn.transaction():
        # Queueing an entity whose rows a chunk kept is harmless: the materializer deletes only
        # the keys of queued entities that have no row left at all.
        _queue_left_without_rows(conn, schema, view, boundary)
        expire_before(conn, schema, view, boundary)  # chunks do not overlap: kept ones start later
        conn.execute("SELECT drop_chunks(%s::regclass, older_than => %s)", [table, horizon])
    return count


def _queue_left_without_rows(
    conn: psycopg.Connection, schema: str, view: ResolvedView, boundary: datetime
) -> None:
    """Queue for the materializer the entities with rows before `boundary` and none from it on:
    the distinct old keys first, each then probed in the primary key for a newer row."""
    keys = sql.SQL(", ").join(map(sql.Identifier, view.join_keys))
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{k} = old.{k}").format(k=sql.Identifier(k)) for k in view.join_keys
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {removed} ({keys}, _computed_at) "
            "SELECT {keys}, clock_timestamp() "
            "FROM (SELECT DISTINCT {keys} FROM {table} WHERE feature_ts < %(boundary)s) old "
            "WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {match} "
            "AND t.feature_ts >= %(boundary)s)"
        ).format(
            removed=queue_id(schema, view, REMOVED),
            keys=keys,
            table=table_id(schema, view),
            match=match,
        ),
        {"boundary": boundary},
    )
