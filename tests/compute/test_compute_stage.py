"""The spark-submit path: `jstore.compute.stage` runs jobs/compute_features.py in its own JVM
with the settings passed through the environment, and leaves a complete staged run."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from jstore.compute import stage
from jstore.staging import StagedRun
from tests.compute.windowing_helpers import at, write_landing


@pytest.mark.e2e
@pytest.mark.spark
def test_stage_writes_parquet_and_the_manifest(settings, registry, example_repo):
    registry.apply(example_repo)
    purchases = registry.get_source("purchases")
    write_landing(
        settings.lake_path,
        [
            {
                "user_id": "u1",
                "merchant_id": "m1",
                "amount": 10.0,
                "category": "a",
                "ts": at("10:15"),
            },
            {
                "user_id": "u1",
                "merchant_id": "m1",
                "amount": 30.0,
                "category": "b",
                "ts": at("10:45"),
            },
        ],
        purchases,
    )
    staged = stage(
        settings.model_copy(update={"spark_master": "local[1]"}),
        registry,
        "merchant_sales",
        at("00:00"),
        at("4d 00:00"),
        run_id="manual__2024-05-01T00:00:00+00:00",
    )
    assert staged == StagedRun.find(settings, "merchant_sales", "manual__2024-05-01T00:00:00+00:00")
    assert (staged.view, staged.version, staged.rows) == ("merchant_sales", 1, 2)
    table = pq.read_table(staged.path, columns=None).sort_by("feature_ts")
    assert table.column_names == [
        "merchant_id",
        "feature_ts",
        "count_1d",
        "count_7d",
        "amount_sum_1d",
        "amount_sum_7d",
    ]
    assert table.to_pylist() == [
        {
            "merchant_id": "m1",
            "feature_ts": at("2d 00:00"),
            "count_1d": 2,
            "count_7d": 2,
            "amount_sum_1d": 40.0,
            "amount_sum_7d": 40.0,
        },
        {
            "merchant_id": "m1",
            "feature_ts": at("3d 00:00"),
            "count_1d": 0,
            "count_7d": 2,
            "amount_sum_1d": 0.0,
            "amount_sum_7d": 40.0,
        },
    ]


def test_stage_refuses_an_unaligned_end_before_starting_spark(settings, registry, example_repo):
    registry.apply(example_repo)
    with pytest.raises(ValueError, match=r"^end: .* not aligned to the step 1d of merchant_sales"):
        stage(settings, registry, "merchant_sales", at("00:00"), at("2d 01:00"), run_id="r1")
