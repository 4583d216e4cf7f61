"""One view's failure is not every view's: the others are pushed, the failure is named."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from jstore.online import MaterializeFailed, materialize
from jstore.orchestration import materialize_task
from jstore.repo import FeatureRepo
from tests.online.online_helpers import HOUR, T0, clicks, publish_rows, row, user, user_clicks
from tests.online.test_online_materialize import stored


def two_views_one_broken(settings, registry):
    """`user_clicks` and `user_spend` published; `user_clicks`' table then loses a column."""
    spend = user_clicks.model_copy(update={"name": "user_spend"})
    registry.apply(FeatureRepo.of(user, clicks, user_clicks, spend))
    views = [registry.get_view("user_clicks"), registry.get_view("user_spend")]
    for view in views:
        publish_rows(settings, registry, view, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])
    with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP COLUMN amount_max_1h").format(
                sql.Identifier(settings.offline_schema, "user_clicks__v1")
            )
        )
    return views


def test_a_failed_view_is_reported_and_the_next_view_is_still_pushed(settings, registry, offline):
    broken, spend = two_views_one_broken(settings, registry)

    result = materialize(settings, registry, ["user_clicks", "user_spend"], offline=offline)

    assert [(v.view, v.written) for v in result.views] == [("user_spend", 1)]
    assert [(f.view, f.version) for f in result.failed] == [("user_clicks", 1)]
    assert result.failed[0].error.startswith("UndefinedColumn: column t.amount_max_1h")
    assert "\n" not in result.failed[0].error
    assert stored(settings, spend) == {"u1": ["2024-05-01T10:00:00Z", 1, 5.0, 5.0]}
    assert stored(settings, broken) == {}
    run = registry.get_run(result.failed[0].run_id)
    assert (run.status, run.error.splitlines()[0]) == ("failed", result.failed[0].error)


def test_the_materialize_task_fails_naming_the_view_after_pushing_the_others(settings, registry):
    _, spend = two_views_one_broken(settings, registry)

    with pytest.raises(MaterializeFailed, match=r"^materialize user_clicks v1 failed: Undefined"):
        materialize_task(settings, ["user_clicks", "user_spend"])

    assert stored(settings, spend) == {"u1": ["2024-05-01T10:00:00Z", 1, 5.0, 5.0]}
