"""The spark-submit path: `jstore.pipeline.stage` runs jobs/compute_features.py in its own JVM
on the request it resolved, with the settings passed through the environment, and leaves a
complete staged run (rows, request, manifest) recorded as the `compute` run."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jstore.durations import floor_to_step
from jstore.lake_fs import lake_root
from jstore.pipeline import stage
from jstore.request import ComputeRequest
from jstore.staging import StagedRun
from tests.compute.windowing_helpers import at, write_landing


@pytest.mark.e2e
@pytest.mark.spark
def test_stage_writes_parquet_and_the_manifest(settings, registry, example_repo):
    registry.apply(example_repo)
    purchases = registry.get_source("purchases")
    write_landing(
        lake_root(settings),
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
    run_id = "manual__2024-05-01T00:00:00+00:00"
    request = ComputeRequest.of(
        registry.get_view("merchant_sales"), at("00:00"), at("4d 00:00"), run_id=run_id
    )
    staged = stage(settings.model_copy(update={"spark_master": "local[1]"}), registry, request)
    assert staged == StagedRun.find(settings, "merchant_sales", run_id)
    assert staged.request() == request
    run = registry.get_run(run_id)
    assert (run.kind, run.status, run.rows) == ("compute", "success", 2)
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
    staged_file = os.fspath(staged.parquet_files[0])
    assert encodings(staged_file, "amount_sum_1d") == ({"ZSTD"}, False)
    (tile_file, *_) = (Path(lake_root(settings)) / "tiles").glob("*/block=*/*.parquet")
    assert encodings(tile_file, "__sum_amount") == ({"ZSTD"}, False)


def encodings(path, column: str) -> tuple[set[str], bool]:
    """The codecs of a column's chunks in a Parquet file, and whether any is dictionary-encoded
    (float columns are written plain: jstore.staging.parquet_write_options)."""
    metadata = pq.ParquetFile(path).metadata
    chunks = [
        group.column(i)
        for group in (metadata.row_group(g) for g in range(metadata.num_row_groups))
        for i in range(group.num_columns)
        if group.column(i).path_in_schema == column
    ]
    dictionary = any(
        "RLE_DICTIONARY" in c.encodings or "PLAIN_DICTIONARY" in c.encodings for c in chunks
    )
    return {c.compression for c in chunks}, dictionary


def test_a_request_refuses_an_unaligned_end_before_starting_spark(settings, registry, example_repo):
    registry.apply(example_repo)
    with pytest.raises(ValueError, match=r"^end: .* not aligned to the step 1d of merchant_sales"):
        ComputeRequest.of(registry.get_view("merchant_sales"), at("00:00"), at("2d 01:00"))


def test_a_request_refuses_an_interval_that_ends_in_the_future(settings, registry, example_repo):
    registry.apply(example_repo)
    day = timedelta(days=1)
    tomorrow = floor_to_step(datetime.now(UTC), day) + day
    with pytest.raises(ValueError, match=r"^end: .* is in the future"):
        ComputeRequest.of(registry.get_view("merchant_sales"), tomorrow - 2 * day, tomorrow)


def test_stage_refuses_a_landing_zone_that_lost_part_of_a_batch(settings, registry, example_repo):
    """A journal whose file is gone cannot be rolled forward: compute refuses before Spark."""
    from jstore.ingest.recovery import LandingIncomplete
    from jstore.lake import landing_dir

    registry.apply(example_repo)
    journals = landing_dir(settings, "purchases") / "_journal"
    journals.mkdir(parents=True)
    lost = [str(journals.parent / ".lost.tmp"), str(journals.parent / "lost.parquet")]
    (journals / "batch-1.json").write_text(json.dumps({"moves": [lost]}))
    request = ComputeRequest.of(registry.get_view("merchant_sales"), at("00:00"), at("2d 00:00"))

    def launch(job):
        raise AssertionError("Spark started on a half-written landing zone")

    with pytest.raises(LandingIncomplete, match=r"^source 'purchases': journal batch-1.json"):
        stage(settings, registry, request, launch)
    run = registry.get_run(request.run_id)
    assert (run.kind, run.status) == ("compute", "failed")
    assert run.error.startswith("LandingIncomplete: source 'purchases'")
