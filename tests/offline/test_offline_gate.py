"""Write-audit-publish: a staged run that fails its suite is never published, and no publish
path publishes a staged run without a successful validation of that same run."""

from __future__ import annotations

import pytest

from jstore.offline import OfflineStore
from jstore.pipeline import StagedRunNotValidated, publish, validate
from jstore.quality import QualityGateFailed
from tests.factories import stage_rows, validate_and_publish
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
    assert validate_and_publish(settings, registry, good) == 2
    bad = stage_rows(settings, spend_view, [_row(0, 5), _row(1, -3)], T0, T0 + 2 * HOUR, "bad")
    with pytest.raises(QualityGateFailed) as failed:
        validate_and_publish(settings, registry, bad)
    assert failed.value.report.failed
    assert any("count_1h" in line for line in failed.value.report.failed)
    assert _stored(settings, spend_view) == [(T0, 1), (T0 + HOUR, 2)]
    assert registry.coverage("account_spend", 1) == [(T0, T0 + 2 * HOUR)]
    assert [r.details["staged_run_id"] for r in registry.list_runs(kind="publish")] == ["good"]
    assert [r.status for r in registry.list_runs(kind="validate")] == ["failed", "success"]


def test_publish_refuses_a_staged_run_never_validated_or_failed(settings, registry, spend_view):
    registry.apply(SMALL_REPO)
    unchecked = stage_rows(settings, spend_view, [_row(0, 1)], T0, T0 + HOUR, "unchecked")
    with pytest.raises(StagedRunNotValidated, match=r"^run_id: staged run unchecked of"):
        publish(settings, registry, unchecked)
    bad = stage_rows(settings, spend_view, [_row(0, -1)], T0, T0 + HOUR, "bad")
    with pytest.raises(QualityGateFailed):
        validate(settings, registry, bad)
    with pytest.raises(StagedRunNotValidated, match=r"^run_id: staged run bad of"):
        publish(settings, registry, bad)
    assert _stored(settings, spend_view) == []
    assert registry.coverage("account_spend", 1) == []
    assert registry.list_runs(kind="publish") == []


def test_publish_refuses_a_run_restaged_after_its_validation(settings, registry, spend_view):
    """The validation must be of the rows being published: the same run id staged again over
    another interval (or with other rows) needs a validation of its own."""
    registry.apply(SMALL_REPO)
    validate(settings, registry, stage_rows(settings, spend_view, [_row(0, 1)], T0, T0 + HOUR, "r"))
    again = stage_rows(settings, spend_view, [_row(0, 1), _row(1, 2)], T0, T0 + 2 * HOUR, "r")
    with pytest.raises(StagedRunNotValidated):
        publish(settings, registry, again)
    validate(settings, registry, again)
    assert publish(settings, registry, again) == 2
    assert _stored(settings, spend_view) == [(T0, 1), (T0 + HOUR, 2)]
