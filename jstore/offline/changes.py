"""What materialize has not pushed yet: two small queues next to each view version's table.

- `<table>__published(_computed_at)`: one row per publish, its `_computed_at` stamp;
- `<table>__removed(join keys…, _computed_at)`: the entities a publish deleted rows of in its
  interval and did not put a row back for in that interval.

Publish appends to both in its own transaction (`queue_changes`, or the partition swap), so a
row is in a queue exactly when the publish is committed. The materializer, holding its lock
(one at a time per table), reads the queues and the rows in ONE repeatable-read snapshot,
pushes to Redis, then deletes the queue rows it read, in that same transaction
(`PendingChanges.consume`): rows a publish commits meanwhile are not in the snapshot, so the
delete leaves them for the next run.

Why queues and not "`_computed_at` greater than the last one pushed": `_computed_at` is a clock
reading taken before the commit, and commit order is what a reader sees. A watermark on it is
only safe while every publish of the table reads the clock under the table's lock; the queues
make no such assumption: what is consumed is what the snapshot saw, whatever its stamps.

The materializer's lock is a PostgreSQL session advisory lock, taken before the snapshot: it
dies with the session (a killed materializer never leaves a stale lease behind, whatever its
run time), and the second materializer's snapshot starts after the first one's commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psycopg
import pyarrow as pa
from psycopg import sql

from jstore.model import ResolvedView
from jstore.offline.arrow_copy import copy_out, select_column
from jstore.offline.reads import latest_rows
from jstore.offline.tables import PG_TYPES, side_table_id, table_id

PUBLISHED = "published"
REMOVED = "removed"


def queue_id(schema: str, view: ResolvedView, queue: str) -> sql.Identifier:
    """`<schema>.<table>__<queue>`."""
    return side_table_id(schema, view, f"__{queue}")


def materialize_lock_key(schema: str, view: ResolvedView) -> str:
    return f"jstore.materialize:{schema}.{view.table}"


def ensure_queues(conn: psycopg.Connection, schema: str, view: ResolvedView) -> None:
    """Create the view version's queues if missing.

    Created beside a table that already has rows (published before queues existed), they are
    seeded with every stamp of it, so the next materialize re-reads every entity once.
    """
    if _exists(conn, queue_id(schema, view, PUBLISHED)):
        return
    keys = sql.SQL(", ").join(
        sql.SQL("{} {} NOT NULL").format(sql.Identifier(k), sql.SQL(PG_TYPES[view.key_dtypes[k]]))
        for k in view.join_keys
    )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"jstore.offline:{schema}"])
        if _exists(conn, queue_id(schema, view, PUBLISHED)):
            return
        conn.execute(
            sql.SQL("CREATE TABLE {} ({}, _computed_at timestamptz NOT NULL)").format(
                queue_id(schema, view, REMOVED), keys
            )
        )
        conn.execute(
            sql.SQL("CREATE TABLE {} (_computed_at timestamptz NOT NULL)").format(
                queue_id(schema, view, PUBLISHED)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} SELECT DISTINCT _computed_at FROM {}").format(
                queue_id(schema, view, PUBLISHED), table_id(schema, view)
            )
        )


def _exists(conn: psycopg.Connection, table: sql.Identifier) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table.as_string(conn)]).fetchone()
    return bool(row and row[0])


def delete_ranges(
    schema: str,
    view: ResolvedView,
    ranges: list[tuple[datetime, datetime]],
    gone: sql.Identifier,
) -> list[sql.Composed]:
    """Statements deleting the table's rows in `ranges` and keeping their distinct keys in the
    temporary table `gone` (dropped at the commit), for `queue_changes`.
    """
    keys = sql.SQL(", ").join(map(sql.Identifier, view.join_keys))
    table = table_id(schema, view)
    statements = [keys_table(schema, view, gone)]
    for start, end in ranges:
        statements.append(
            sql.SQL(
                "WITH deleted AS (DELETE FROM {table} WHERE feature_ts >= {start} "
                "AND feature_ts < {end} RETURNING {keys}) "
                "INSERT INTO {gone} SELECT DISTINCT {keys} FROM deleted"
            ).format(
                table=table, start=sql.Literal(start), end=sql.Literal(end), keys=keys, gone=gone
            )
        )
    return statements


def keys_table(schema: str, view: ResolvedView, name: sql.Identifier) -> sql.Composed:
    """A temporary table (dropped at the commit) with the table's join key columns."""
    return sql.SQL(
        "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
    ).format(name, sql.SQL(", ").join(map(sql.Identifier, view.join_keys)), table_id(schema, view))


def queue_changes(
    schema: str,
    view: ResolvedView,
    computed_at: datetime,
    gone: sql.Identifier,
    staged_keys: sql.Identifier,
) -> list[sql.Composed]:
    """Statements queueing a delete-and-insert replace for the materializer, in the publish's
    transaction: the entities `delete_ranges` kept in `gone` that are not among the staged
    rows' distinct keys (`staged_keys`, a table of `keys_table`'s shape) go to `__removed`, by
    EXCEPT (one hashed pass over each, both a row per entity); every other changed entity has a
    row stamped `computed_at`, which `__published` lists.
    """
    keys = sql.SQL(", ").join(map(sql.Identifier, view.join_keys))
    stamp = sql.Literal(computed_at)
    return [
        sql.SQL(
            "INSERT INTO {removed} ({keys}, _computed_at) SELECT {keys}, {stamp}::timestamptz "
            "FROM (SELECT {keys} FROM {gone} EXCEPT SELECT {keys} FROM {staged}) AS removed"
        ).format(
            removed=queue_id(schema, view, REMOVED),
            keys=keys,
            stamp=stamp,
            gone=gone,
            staged=staged_keys,
        ),
        sql.SQL("INSERT INTO {} VALUES ({}::timestamptz)").format(
            queue_id(schema, view, PUBLISHED), stamp
        ),
    ]


class PendingChanges:
    """The changes of one view version not yet materialized, read in one snapshot."""

    def __init__(
        self,
        conn: psycopg.Connection,
        schema: str,
        view: ResolvedView,
        everything: bool,
        queued: dict[str, bool],
    ):
        self.conn = conn
        self.schema = schema
        self.view = view
        self.everything = everything
        self.queued = queued
        """Which queues hold rows in this snapshot (an empty one is neither read nor locked)."""

    def latest_rows(self, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """The latest row of every entity changed or removed (or of every entity at all)."""
        if self.everything:
            return latest_rows(self.conn, self.schema, self.view, None, batch_rows)
        if not any(self.queued.values()):
            return iter(())
        keys = sql.SQL(", ").join(map(sql.Identifier, self.view.join_keys))
        entities = sql.SQL(
            "SELECT {keys} FROM {table} WHERE _computed_at IN (SELECT _computed_at FROM {pub}) "
            "UNION ALL SELECT {keys} FROM {removed}"
        ).format(
            keys=keys,
            table=table_id(self.schema, self.view),
            pub=queue_id(self.schema, self.view, PUBLISHED),
            removed=queue_id(self.schema, self.view, REMOVED),
        )
        return latest_rows(self.conn, self.schema, self.view, entities, batch_rows)

    def gone(self) -> pa.Table:
        """Join keys of the removed entities that have no row left at all: keys to delete.

        (No columns at all when nothing was removed.)
        """
        if not self.queued[REMOVED]:
            return pa.table({})
        dtypes = {k: self.view.key_dtypes[k] for k in self.view.join_keys}
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{k} = r.{k}").format(k=sql.Identifier(k)) for k in self.view.join_keys
        )
        query = sql.SQL(
            "SELECT DISTINCT {columns} FROM {removed} r "
            "WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})"
        ).format(
            columns=sql.SQL(", ").join(
                select_column(sql.Identifier("r", k), d) for k, d in dtypes.items()
            ),
            removed=queue_id(self.schema, self.view, REMOVED),
            table=table_id(self.schema, self.view),
            match=match,
        )
        return copy_out(self.conn, query, dtypes)

    def consume(self) -> None:
        """Delete the queue rows this snapshot saw (committed when the materializer's run is)."""
        for queue, queued in self.queued.items():
            if queued:
                self.conn.execute(
                    sql.SQL("DELETE FROM {}").format(queue_id(self.schema, self.view, queue))
                )


NOTHING_PENDING = PendingChanges(None, "", None, False, {PUBLISHED: False, REMOVED: False})  # type: ignore[arg-type]
"""The pending changes of a view whose table does not exist (never published)."""


@contextmanager
def pending_changes(
    conn: psycopg.Connection, schema: str, view: ResolvedView, everything: bool
) -> Iterator[PendingChanges]:
    """A repeatable-read transaction over the view's rows and queues (commits on success).

    The caller holds `materialize_lock`, so the snapshot starts after the previous run's commit.
    """
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ WRITE")
        queued = {}
        for queue in (PUBLISHED, REMOVED):
            query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                queue_id(schema, view, queue)
            )
            queued[queue] = bool(conn.execute(query).fetchone()[0])  # type: ignore[index]
        yield PendingChanges(conn, schema, view, everything, queued)


@contextmanager
def materialize_lock(conn: psycopg.Connection, schema: str, view: ResolvedView) -> Iterator[None]:
    """Hold the view version's materialize lock (blocks while another materializer holds it).

    A session lock taken outside any transaction, so the snapshot of `pending_changes` starts
    after it is granted. When the body raises, the caller closes the session, which frees it.
    """
    key = materialize_lock_key(schema, view)
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
    yield
    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
