"""Deletions reach Redis, materializations of one view run one at a time, and no publish is
skipped, whatever the order in which publishes and materializations start and commit."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import redis
from psycopg import sql

from jstore.offline import OfflineStore
from jstore.offline.changes import PUBLISHED, REMOVED, materialize_lock, queue_id
from jstore.online import materialize
from jstore.online.layout import value_keys
from jstore.registry import Registry
from tests.online.online_helpers import HOUR, T0, apply_clicks, publish_rows, row
from tests.online.test_online_materialize import stored


def connect(settings) -> psycopg.Connection:
    return psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True)


def wait_until_waiting(settings, what: str) -> None:
    """Until some session waits for a lock (`what` names it in the query text of pg_locks)."""
    with connect(settings) as conn:
        for _ in range(600):
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE NOT l.granted AND a.query LIKE %s",
                [f"%{what}%"],
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError(f"nothing waits on a lock in {what!r}")


def test_a_republish_that_removes_an_entitys_latest_row_rewrites_or_deletes_its_key(
    settings, registry, offline
):
    view = apply_clicks(registry)
    publish_rows(
        settings,
        registry,
        view,
        T0,
        T0 + 2 * HOUR,
        [
            row("u1", T0, 1, 5.0, 5.0),
            row("u1", T0 + HOUR, 2, 7.5, 5.0),
            row("u2", T0 + HOUR, 1, 3.0, 3.0),
            row("u3", T0, 1, 1.0, 1.0),
        ],
    )
    materialize(settings, registry, offline=offline)
    assert stored(settings, view) == {
        "u1": ["2024-05-01T11:00:00Z", 2, 7.5, 5.0],
        "u2": ["2024-05-01T11:00:00Z", 1, 3.0, 3.0],
        "u3": ["2024-05-01T10:00:00Z", 1, 1.0, 1.0],
    }

    # A corrected source: the second hour holds no events of u1 or u2 any more.
    publish_rows(settings, registry, view, T0 + HOUR, T0 + 2 * HOUR, [])
    result = materialize(settings, registry, offline=offline).views[0]

    assert (result.written, result.deleted) == (1, 1)
    assert stored(settings, view) == {
        "u1": ["2024-05-01T10:00:00Z", 1, 5.0, 5.0],  # back to its row that is still there
        "u3": ["2024-05-01T10:00:00Z", 1, 1.0, 1.0],  # untouched
    }
    r = redis.Redis.from_url(settings.redis_url)
    assert r.exists(*value_keys(settings.project, view, ["u2"])) == 0
    r.close()

    again = materialize(settings, registry, offline=offline).views[0]
    assert (again.written, again.deleted) == (0, 0)


def test_an_entity_moved_within_the_republished_interval_keeps_its_new_latest_row(
    settings, registry, offline
):
    view = apply_clicks(registry)
    publish_rows(
        settings,
        registry,
        view,
        T0,
        T0 + 2 * HOUR,
        [row("u1", T0 + HOUR, 2, 7.5, 5.0), row("u2", T0, 1, 3.0, 3.0)],
    )
    materialize(settings, registry, offline=offline)

    publish_rows(
        settings,
        registry,
        view,
        T0,
        T0 + 2 * HOUR,
        [row("u1", T0, 4, 8.0, 6.0), row("u2", T0, 1, 3.0, 3.0)],
    )
    result = materialize(settings, registry, offline=offline).views[0]

    assert (result.written, result.deleted) == (2, 0)
    assert stored(settings, view) == {
        "u1": ["2024-05-01T10:00:00Z", 4, 8.0, 6.0],
        "u2": ["2024-05-01T10:00:00Z", 1, 3.0, 3.0],
    }


def test_a_materialization_waits_for_the_one_holding_the_views_lock(settings, registry):
    view = apply_clicks(registry)
    publish_rows(settings, registry, view, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])

    with connect(settings) as holder, ThreadPoolExecutor(1) as pool:
        with materialize_lock(holder, settings.offline_schema, view):
            waiting = pool.submit(materialize, settings, registry)
            wait_until_waiting(settings, "pg_advisory_lock")
            assert stored(settings, view) == {}  # nothing pushed while the lock is held
        done = waiting.result(timeout=60).views[0]

    assert done.written == 1
    assert stored(settings, view) == {"u1": ["2024-05-01T10:00:00Z", 1, 5.0, 5.0]}


def test_two_materializations_at_once_push_each_change_once(settings, registry):
    view = apply_clicks(registry)
    rows = [row(f"u{i}", T0, i, float(i), float(i)) for i in range(1, 2001)]
    publish_rows(settings, registry, view, T0, T0 + HOUR, rows)
    start = threading.Barrier(2)

    def run() -> tuple[str, int]:
        with Registry(settings) as own_registry, OfflineStore(settings) as own_offline:
            start.wait()
            result = materialize(settings, own_registry, offline=own_offline)
        assert result.failed == []
        return result.views[0].run_id, result.views[0].written

    with ThreadPoolExecutor(2) as pool:
        runs = [f.result(timeout=120) for f in [pool.submit(run), pool.submit(run)]]

    assert sorted(written for _, written in runs) == [0, 2000]
    assert [registry.get_run(run_id).status for run_id, _ in runs] == ["success", "success"]
    values = stored(settings, view)
    assert len(values) == 2000
    assert values["u7"] == ["2024-05-01T10:00:00Z", 7, 7.0, 7.0]


def test_a_publish_that_commits_after_a_later_materialization_is_pushed_next_time(
    settings, registry, offline
):
    view = apply_clicks(registry)
    publish_rows(settings, registry, view, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])
    materialize(settings, registry, offline=offline)

    with connect(settings) as blocker, ThreadPoolExecutor(1) as pool:
        # Holds the publish inside its transaction: rows stamped and inserted, not committed.
        with blocker.transaction():
            blocker.execute(
                sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
                    queue_id(settings.offline_schema, view, PUBLISHED)
                )
            )
            publishing = pool.submit(
                publish_rows,
                settings,
                registry,
                view,
                T0 + HOUR,
                T0 + 2 * HOUR,
                [row("u2", T0 + HOUR, 1, 3.0, 3.0), row("u1", T0 + HOUR, 2, 9.0, 5.0)],
            )
            wait_until_waiting(settings, "__published")
            meanwhile = materialize(settings, registry, offline=offline).views[0]
        publishing.result(timeout=60)

    assert (meanwhile.written, meanwhile.deleted) == (0, 0)
    later = materialize(settings, registry, offline=offline).views[0]
    assert (later.written, later.deleted) == (2, 0)
    assert stored(settings, view) == {
        "u1": ["2024-05-01T11:00:00Z", 2, 9.0, 5.0],
        "u2": ["2024-05-01T11:00:00Z", 1, 3.0, 3.0],
    }


def test_a_table_published_before_its_queues_existed_is_read_whole_once(
    settings, registry, offline
):
    view = apply_clicks(registry)
    publish_rows(settings, registry, view, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])
    materialize(settings, registry, offline=offline)
    with connect(settings) as conn:  # a table as an older JStore left it: no queues, new rows
        for queue in (PUBLISHED, REMOVED):
            conn.execute(
                sql.SQL("DROP TABLE {}").format(queue_id(settings.offline_schema, view, queue))
            )
        conn.execute(
            sql.SQL(
                "UPDATE {} SET count_1h = 3, _computed_at = clock_timestamp() WHERE user_id = 'u1'"
            ).format(sql.Identifier(settings.offline_schema, view.table))
        )

    with OfflineStore(settings) as fresh:  # a new process: nothing known of the queues
        later = materialize(settings, registry, offline=fresh).views[0]
        again = materialize(settings, registry, offline=fresh).views[0]

    assert (later.written, again.written) == (1, 0)
    assert stored(settings, view) == {"u1": ["2024-05-01T10:00:00Z", 3, 5.0, 5.0]}


def test_a_flushed_redis_is_loaded_whole_again(settings, registry, offline):
    view = apply_clicks(registry)
    publish_rows(settings, registry, view, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])
    materialize(settings, registry, offline=offline)
    r = redis.Redis.from_url(settings.redis_url)
    r.delete(*r.keys(f"{settings.project}:*"))
    r.close()

    again = materialize(settings, registry, offline=offline).views[0]

    assert again.written == 1
    assert stored(settings, view) == {"u1": ["2024-05-01T10:00:00Z", 1, 5.0, 5.0]}
