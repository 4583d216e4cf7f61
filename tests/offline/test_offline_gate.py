"""Write-audit-publish: a staged run that fails its suite is never published."""

from __future__ import annotations

import pytest

from jstore.offline import OfflineStore
from jstore.pipeline import validate_and_publish
from jstore.quality import QualityGateFailed
from tests.factories import stage_rows
from tests.offline.conftest import HOUR, SMALL_REPO, T0


def _row(hours, count):
    return {
        "bank": "b",
        "account_id": 1,
        "feature_ts": T0 + hours * HOUR,
        "count_1h": count,
        "amount_sum_1h": 2.0 * count,
        "amount_max_1h": 2.0 if count else None,
    }


def _stored(settings, view):
    with OfflineStore(settings) as store:
        return [
            (r["feature_ts"], r["count_1h"])
            for r in store.history(view, {"bank": "b", "account_id": 1})
        ]


def test_a_failing_suite_blocks_the_publish(settings, registry, spend_view):
    registry.apply(SMALL_REPO)
    good = stage_rows(settings, spend_view, [_row(0, 1), _row(1, 2)], T0, T0 + 2 * HOUR, "good")
    report, published = validate_and_publish(settings, registry, spend_view, good)
    assert (report.success, published) == (True, 2)
    bad = stage_rows(settings, spend_view, [_row(0, 5), _row(1, -3)], T0, T0 + 2 * HOUR, "bad")
    with pytest.raises(QualityGateFailed) as failed:
        validate_and_publish(settings, registry, spend_view, bad)
    assert failed.value.report.failed
    assert any("count_1h" in line for line in failed.value.report.failed)
    assert _stored(settings, spend_view) == [(T0, 1), (T0 + HOUR, 2)]
    assert registry.coverage("account_spend", 1) == [(T0, T0 + 2 * HOUR)]
    assert [r.details["staged_run"] for r in registry.list_runs(kind="publish")] == ["good"]
    assert [r.status for r in registry.list_runs(kind="validate")] == ["failed", "success"]
