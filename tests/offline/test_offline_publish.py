"""Publishing a staged run: an atomic, idempotent replace of the view's rows in [start, end)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from psycopg import sql

from jstore.offline import OfflineStore, StagedRunRejected
from jstore.offline.changes import REMOVED, queue_id
from jstore.pipeline import validate
from tests.factories import stage_rows, validate_and_publish
from tests.offline.conftest import HOUR, T0


def _row(account_id, hours, count, total=None, top=None, bank="b"):
    return {
        "bank": bank,
        "account_id": account_id,
        "feature_ts": T0 + hours * HOUR,
        "count_1h": count,
        "amount_sum_1h": total,
        "amount_max_1h": top,
    }


def _stored(store, view):
    return [
        (r["feature_ts"], r["count_1h"], r["_run_id"])
        for r in _history(store, view, 1) + _history(store, view, 2)
    ]


def _history(store, view, account_id):
    return store.history(view, {"bank": "b", "account_id": account_id})


def test_publish_replaces_exactly_the_interval(store, settings, spend_view):
    first = [_row(1, h, h + 1, 10.0 * h, 5.5) for h in range(6)] + [_row(2, 0, 7, 1.0, 1.0)]
    assert (
        store.publish(spend_view, stage_rows(settings, spend_view, first, T0, T0 + 6 * HOUR, "r1"))
        == 7
    )
    again = [_row(1, 2, 30), _row(1, 3, 40)]
    store.publish(
        spend_view, stage_rows(settings, spend_view, again, T0 + 2 * HOUR, T0 + 4 * HOUR, "r2")
    )
    assert _stored(store, spend_view) == [
        (T0, 1, "r1"),
        (T0 + HOUR, 2, "r1"),
        (T0 + 2 * HOUR, 30, "r2"),
        (T0 + 3 * HOUR, 40, "r2"),
        (T0 + 4 * HOUR, 5, "r1"),
        (T0 + 5 * HOUR, 6, "r1"),
        (T0, 7, "r1"),
    ]
    row = _history(store, spend_view, 1)[0]
    assert (row["amount_sum_1h"], row["amount_max_1h"]) == (0.0, 5.5)


def test_publish_twice_gives_the_same_rows(store, settings, spend_view):
    rows = [_row(1, h, h) for h in range(3)]
    staged = stage_rows(settings, spend_view, rows, T0, T0 + 3 * HOUR, "r1", files=2)
    store.publish(spend_view, staged)
    before = _stored(store, spend_view)
    store.publish(spend_view, staged)
    assert _stored(store, spend_view) == before == [(T0 + h * HOUR, h, "r1") for h in range(3)]


def test_an_empty_run_deletes_the_interval(store, settings, spend_view):
    store.publish(
        spend_view, stage_rows(settings, spend_view, [_row(1, 1, 1)], T0, T0 + 2 * HOUR, "r1")
    )
    assert (
        store.publish(spend_view, stage_rows(settings, spend_view, [], T0, T0 + 2 * HOUR, "r2"))
        == 0
    )
    assert _stored(store, spend_view) == []


def test_rows_outside_the_interval_are_refused(store, settings, spend_view):
    store.publish(
        spend_view, stage_rows(settings, spend_view, [_row(1, 0, 1)], T0, T0 + HOUR, "r1")
    )
    late = stage_rows(settings, spend_view, [_row(1, 0, 9), _row(1, 1, 9)], T0, T0 + HOUR, "r2")
    with pytest.raises(
        StagedRunRejected, match=r"feature_ts: .* rows outside \[2024-05-01T00:00:00Z"
    ):
        store.publish(spend_view, late)
    assert _stored(store, spend_view) == [(T0, 1, "r1")]


def test_the_entities_a_replace_removes_are_queued(store, settings, spend_view):
    first = [_row(1, 0, 1), _row(1, 2, 1), _row(2, 1, 1), _row(3, 1, 1), _row(4, 3, 1)]
    store.publish(spend_view, stage_rows(settings, spend_view, first, T0, T0 + 4 * HOUR, "r1"))
    queue = queue_id(store.schema, spend_view, REMOVED)
    store.conn.execute(sql.SQL("DELETE FROM {}").format(queue))
    # account 1 keeps a row in [1h, 3h) (another hour), 2 loses its only one there, 3 has one
    # back, 4 had none there
    again = [_row(1, 1, 5), _row(3, 1, 5)]
    store.publish(
        spend_view, stage_rows(settings, spend_view, again, T0 + HOUR, T0 + 3 * HOUR, "r2")
    )
    removed = store.conn.execute(sql.SQL("SELECT bank, account_id FROM {}").format(queue))
    assert removed.fetchall() == [("b", 2)]


def test_publish_records_the_run_and_extends_coverage(settings, registry, spend_view):
    from tests.offline.conftest import SMALL_REPO

    registry.apply(SMALL_REPO)
    staged = stage_rows(settings, spend_view, [_row(1, 0, 1)], T0, T0 + 2 * HOUR, "c1")
    assert validate_and_publish(settings, registry, staged) == 1
    staged = stage_rows(settings, spend_view, [_row(1, 2, 1)], T0 + 2 * HOUR, T0 + 3 * HOUR, "c2")
    validate_and_publish(settings, registry, staged)
    assert registry.coverage("account_spend", 1) == [(T0, T0 + 3 * HOUR)]
    runs = registry.list_runs(kind="publish", subject="account_spend")
    assert [(r.status, r.rows, r.start, r.end, r.details["staged_run_id"]) for r in runs] == [
        ("success", 1, T0 + 2 * HOUR, T0 + 3 * HOUR, "c2"),
        ("success", 1, T0, T0 + 2 * HOUR, "c1"),
    ]


CRASHING_PUBLISH = textwrap.dedent(
    """
    import sys
    from jstore.config import Settings
    from jstore.pipeline import publish
    from jstore.registry import Registry
    from jstore.staging import StagedRun

    settings = Settings()
    registry = Registry(settings)
    publish(settings, registry, StagedRun.find(settings, "account_spend", sys.argv[1]))
    """
)


def test_a_crash_between_delete_and_insert_keeps_rows_and_coverage(settings, registry, spend_view):
    from tests.offline.conftest import SMALL_REPO

    registry.apply(SMALL_REPO)
    old = [_row(1, h, 1) for h in range(4)]
    validate_and_publish(
        settings, registry, stage_rows(settings, spend_view, old, T0, T0 + 4 * HOUR, "old")
    )
    new = [_row(1, h, 2) for h in range(6)]
    validate(settings, registry, stage_rows(settings, spend_view, new, T0, T0 + 6 * HOUR, "new"))
    env = {
        **os.environ,
        "JSTORE_CRASH_AT": "publish:after_delete",
        "JSTORE_MONGO_DB": settings.mongo_db,
        "JSTORE_OFFLINE_SCHEMA": settings.offline_schema,
        "JSTORE_LAKE_URI": settings.lake_uri,
        "JSTORE_REGISTRY_SNAPSHOT": str(settings.registry_snapshot),
    }
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_PUBLISH, "new"], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    with OfflineStore(settings) as store:
        assert _stored(store, spend_view) == [(T0 + h * HOUR, 1, "old") for h in range(4)]
    assert registry.coverage("account_spend", 1) == [(T0, T0 + 4 * HOUR)]
    assert [r.status for r in registry.list_runs(kind="publish")] == ["running", "success"]
