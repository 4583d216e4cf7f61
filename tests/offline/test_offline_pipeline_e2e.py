"""`pipeline.compute` end to end: a request -> Spark -> quality gate -> offline store, each step
recorded as its run."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

from jstore import phases
from jstore.export import join_features, resolve_features
from jstore.lake_fs import lake_root
from jstore.offline import OfflineStore
from jstore.pipeline import compute
from jstore.request import ComputeRequest
from tests.compute.windowing_helpers import write_landing
from tests.offline.conftest import HOUR, SMALL_REPO, T0, payments

MINUTE = timedelta(minutes=1)


@pytest.mark.e2e
@pytest.mark.spark
def test_compute_stages_validates_and_publishes(settings, registry, spend_view):
    settings = settings.model_copy(update={"spark_master": "local[2]"})
    registry.apply(SMALL_REPO)
    events = [
        {"bank": "x", "account_id": 1, "card_id": "c", "amount": 10.0, "ts": T0 + 10 * MINUTE},
        {"bank": "x", "account_id": 1, "card_id": "c", "amount": 5.0, "ts": T0 + 40 * MINUTE},
        {"bank": "x", "account_id": 1, "card_id": "c", "amount": 7.0, "ts": T0 + 150 * MINUTE},
    ]
    write_landing(lake_root(settings), events, source=payments)
    request = ComputeRequest.of(registry.get_view("account_spend"), T0, T0 + 4 * HOUR, "e2e-1")
    with phases.collecting() as timed:
        result = compute(settings, registry, request)
    assert list(timed) == [  # where the time went, the job's own phases read from its stdout
        "spark-submit",
        "job start",
        "spark session",
        "spark job",
        "spark stop",
        "validate",
        "publish",
    ]
    assert (result.staged_rows, result.published_rows, result.validation.success) == (3, 3, True)
    with OfflineStore(settings) as store:
        rows = store.history(spend_view, {"bank": "x", "account_id": 1})
    assert [
        (r["feature_ts"], r["count_1h"], r["amount_sum_1h"], r["amount_max_1h"], r["_run_id"])
        for r in rows
    ] == [
        (T0 + HOUR, 2, 15.0, 10.0, "e2e-1"),
        (T0 + 2 * HOUR, 0, 0.0, None, "e2e-1"),
        (T0 + 3 * HOUR, 1, 7.0, 7.0, "e2e-1"),
    ]
    assert registry.coverage("account_spend", 1) == [(T0, T0 + 4 * HOUR)]
    assert registry.get_run("e2e-1").status == "success"
    runs = registry.list_runs(subject="account_spend")
    assert [(r.kind, r.status) for r in runs] == [
        ("publish", "success"),
        ("validate", "success"),
        ("compute", "success"),
    ]
    entities = pa.table(
        {"bank": ["x", "x"], "account_id": [1, 1], "event_timestamp": [T0 + 90 * MINUTE, T0]}
    )
    joined = join_features(
        settings, registry, entities, resolve_features(registry, ["account_spend:count_1h"], None)
    )
    assert joined.table["account_spend__count_1h"].to_pylist() == [2, 0]
