"""Retention (plain PostgreSQL): a publish drops the view's monthly partitions that end at or
before `now - retention`, and queues for the materializer the entities left without any row."""
# ruff: noqa: F811 (the plain-PostgreSQL `store` fixture is imported)

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from jstore.offline.changes import REMOVED, queue_id
from jstore.offline.published_files import files_table
from jstore.offline.tables import month_start, partition_name
from tests.factories import stage_rows
from tests.offline.conftest import HOUR
from tests.offline.test_publish_whole_months import _removed, _row, store  # noqa: F401


def _partitions(store, view) -> list[str]:
    rows = store.conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY 1",
        [sql.Identifier(store.schema, view.table).as_string(store.conn)],
    ).fetchall()
    return [row[0] for row in rows]


def test_a_publish_drops_the_months_past_the_retention(store, settings, spend_view):
    """Retention 20 days: the month before last always ends before `now - 20 days`; the current
    month never does."""
    view = spend_view.model_copy(
        update={
            "definition": spend_view.definition.model_copy(update={"retention": timedelta(days=20)})
        }
    )
    current = month_start(datetime.now(UTC))
    old = month_start(current - timedelta(days=40))
    old_rows = [_row(1, old, 1), _row(2, old + HOUR, 2)]
    store.publish(view, stage_rows(settings, view, old_rows, old, old + 2 * HOUR, "r1"))

    assert _partitions(store, view) == []  # dropped by the publish that wrote it
    assert _removed(store, view) == [1, 2]  # both entities are left without rows

    store.publish(
        view, stage_rows(settings, view, [_row(1, current, 3)], current, current + HOUR, "r2")
    )

    assert _partitions(store, view) == [partition_name(view.table, current)]
    assert store.latest_for_entities(view, [("b", 1), ("b", 2)]) == {
        ("b", 1): {
            "feature_ts": current,
            "count_1h": 3,
            "amount_sum_1h": None,
            "amount_max_1h": None,
        }
    }
    assert store.drop_expired(view) == 0


def test_only_entities_without_a_newer_row_are_queued_and_no_retention_keeps_everything(
    store, settings, spend_view
):
    april, may, june = (datetime(2024, m, 1, tzinfo=UTC) for m in (4, 5, 6))
    rows = [_row(1, april, 1), _row(2, april, 1), _row(2, may, 2), _row(3, may, 3)]
    store.publish(spend_view, stage_rows(settings, spend_view, rows, april, june, "r1"))
    assert store.drop_expired(spend_view, now=june) == 0  # no retention set

    view = spend_view.model_copy(
        update={
            "definition": spend_view.definition.model_copy(update={"retention": timedelta(days=1)})
        }
    )
    assert store.drop_expired(view, now=may + timedelta(days=1)) == 1

    assert _partitions(store, view) == [partition_name(view.table, may)]
    assert _removed(store, view) == [1]  # 2 still has its May row
    assert store.history(view, {"bank": "b", "account_id": 2})[0]["feature_ts"] == may


def test_retention_aborted_by_a_deadlock_is_tried_again(store, settings, spend_view):
    """PostgreSQL aborts one transaction of a deadlock; retention's is tried again. Here another
    session locks the files table retention cuts, then the removed-entities queue retention has
    written to: retention, whose deadlock check runs first (after 1 s, the other's after 10 s),
    is aborted, the other session gets its lock and commits, and retention's second attempt
    drops April."""
    april, may = datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC)
    rows = [_row(1, april, 1), _row(2, may, 2)]
    store.publish(spend_view, stage_rows(settings, spend_view, rows, april, may + HOUR, "r1"))
    view = spend_view.model_copy(
        update={"definition": spend_view.definition.model_copy(update={"retention": HOUR})}
    )
    files = files_table(store.schema, view)
    with psycopg.connect(settings.postgres_dsn.get_secret_value()) as other:
        other.execute("SET deadlock_timeout = '10s'")
        other.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(files))
        with ThreadPoolExecutor(1) as pool:
            dropped = pool.submit(store.drop_expired, view, may + 2 * HOUR)
            _wait_for_a_lock_on(other, files)
            other.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    queue_id(store.schema, view, REMOVED)
                )
            )
            other.commit()
            assert dropped.result(timeout=60) == 1
    assert _partitions(store, view) == [partition_name(view.table, may)]
    assert _removed(store, view) == [1]


def _wait_for_a_lock_on(conn, table) -> None:
    """Until a session waits for a lock on `table`."""
    for _ in range(200):
        waiting = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
            [table.as_string(conn)],
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError(f"no session waited for {table.as_string(conn)}")
