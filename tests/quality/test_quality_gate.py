"""The quality gate on staged runs of user_purchases v1 (step 1h) over [00:00, 06:00).

Given two clean rows plus one crafted row, the report lists exactly the expectation it breaks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from jstore.lake_fs import lake_root
from jstore.quality import QualityGateFailed, validate_staged
from jstore.repo import DefinitionError
from tests.quality.purchase_rows import START, purchase_row

CLEAN = [purchase_row("u1", 1), purchase_row("u2", 2, [5.0, 15.0])]


def test_a_clean_run_passes_and_is_recorded_with_its_page(
    settings, registry, user_purchases, stage
):
    report = validate_staged(settings, registry, user_purchases, stage(CLEAN))

    assert (report.success, report.failed, report.rows) == (True, [], 2)
    assert (report.view, report.version, report.staged_run_id) == (
        "user_purchases",
        1,
        "compute-test",
    )
    run = registry.get_run(report.run_id)
    assert (run.kind, run.subject, run.version, run.status, run.rows) == (
        "validate",
        "user_purchases",
        1,
        "success",
        2,
    )
    assert (run.start, run.end) == (START, START.replace(hour=6))
    assert run.details["statistics"] == report.statistics
    assert run.details["failed"] == []
    page = lake_root(settings) / "quality" / "validations" / "user_purchases__v1" / "compute-test"
    assert report.report_path.startswith(str(page))
    summary = json.loads(Path(report.report_path).with_suffix(".summary.json").read_text())
    assert summary["run_id"] == report.run_id
    assert (lake_root(settings) / "quality" / "index.html").exists()


def test_an_average_rounded_one_ulp_above_the_max_passes(settings, registry, user_purchases, stage):
    rounded = purchase_row("u9", 4, [43.33], amount_avg_1h=43.330000000000005)

    report = validate_staged(settings, registry, user_purchases, stage([*CLEAN, rounded]))

    assert (report.success, report.failed) == (True, [])


def test_each_bad_row_fails_exactly_its_expectation(settings, registry, user_purchases, stage):
    bad_rows = [
        purchase_row(None, 3),
        purchase_row("u3", 6),
        purchase_row("u4", 3) | {"feature_ts": START.replace(hour=3, minute=30)},
        purchase_row("u1", 1),
        purchase_row("u5", 3, count_1h=-1),
        purchase_row("u6", 3, amount_avg_1h=20.0),
        purchase_row("u7", 3, amount_avg_7d=math.nan),
        purchase_row("u8", 3, [20000.0]),
    ]
    at = "feature_ts=2024-05-01 03:00:00+00:00"
    failures = [
        "expect_column_values_to_not_be_null(user_id) [user_id is not null]: 1 of 10 rows, "
        f"e.g. user_id=None {at}",
        "expect_column_values_to_be_between(feature_ts) [feature_ts lies in the computed "
        "interval [start, end)]: 1 of 10 rows, "
        "e.g. user_id=u3 feature_ts=2024-05-01 06:00:00+00:00",
        "expect_column_values_to_be_in_set(_check_feature_ts_step_offset) [feature_ts is on a "
        "step boundary: 0 seconds past a multiple of 1h]: 1 of 10 rows, e.g. user_id=u4 "
        "feature_ts=2024-05-01 03:30:00+00:00 _check_feature_ts_step_offset=1800.0",
        "expect_compound_columns_to_be_unique(user_id, feature_ts) [one row per entity and "
        "feature_ts]: 2 of 10 rows, e.g. user_id=u1 feature_ts=2024-05-01 01:00:00+00:00; "
        "user_id=u1 feature_ts=2024-05-01 01:00:00+00:00",
        "expect_column_values_to_be_between(count_1h) [count_1h is a count, >= 0]: 1 of 10 rows, "
        f"e.g. user_id=u5 {at} count_1h=-1",
        "expect_column_values_to_be_null(_check_amount_avg_1h_le_amount_max_1h) "
        "[amount_avg_1h <= amount_max_1h (relative tolerance 1e-09)]: 1 of 10 rows, "
        f"e.g. user_id=u6 {at} _check_amount_avg_1h_le_amount_max_1h=20 > 10",
        "expect_column_values_to_be_null(_check_amount_avg_7d_non_finite) [amount_avg_7d holds "
        f"no NaN or infinity]: 1 of 10 rows, e.g. user_id=u7 {at} "
        "_check_amount_avg_7d_non_finite=nan",
        # expectations/user_purchases.json
        "expect_column_values_to_be_between(amount_avg_1d) [an average purchase of a day is a "
        f"plausible amount]: 1 of 10 rows, e.g. user_id=u8 {at} amount_avg_1d=20000.0",
    ]

    report = validate_staged(settings, registry, user_purchases, stage([*CLEAN, *bad_rows]))

    assert (report.success, report.failed) == (False, failures)
    run = registry.get_run(report.run_id)
    assert (run.status, run.details["failed"], run.error) == (
        "failed",
        failures,
        "8 expectations failed",
    )
    gate = QualityGateFailed(report)
    assert gate.report is report
    assert failures[0] in str(gate)


def test_a_user_expectation_on_an_unknown_column_is_refused_naming_it(
    settings, registry, user_purchases, stage, tmp_path
):
    (tmp_path / "user_purchases.json").write_text(
        json.dumps(
            {
                "expectations": [
                    {
                        "type": "expect_column_values_to_be_between",
                        "kwargs": {"column": "amount_avg_2d", "min_value": 0},
                    }
                ]
            }
        )
    )
    settings = settings.model_copy(update={"expectations_dir": tmp_path})

    with pytest.raises(
        DefinitionError,
        match=r"user_purchases.json: expectations.0.kwargs.column: "
        r"'amount_avg_2d' is not a column of user_purchases__v1",
    ):
        validate_staged(settings, registry, user_purchases, stage(CLEAN))
    assert registry.list_runs(kind="validate") == []


def test_each_run_has_its_own_data_docs_page(settings, registry, user_purchases, stage):
    first = validate_staged(settings, registry, user_purchases, stage(CLEAN, run_id="compute-a"))
    second = validate_staged(settings, registry, user_purchases, stage(CLEAN, run_id="compute-b"))

    assert first.report_path != second.report_path
    index = (lake_root(settings) / "quality" / "index.html").read_text()
    for report in (first, second):
        assert report.staged_run_id in Path(report.report_path).read_text()
        assert report.staged_run_id in index


def test_an_empty_run_passes_with_or_without_a_parquet_file(
    settings, registry, user_purchases, stage
):
    with_file = stage([], run_id="compute-empty")
    without = stage([], run_id="compute-no-file")
    (without.path / "part-00000.parquet").unlink()

    for staged in (with_file, without):
        report = validate_staged(settings, registry, user_purchases, staged)
        assert (report.success, report.failed, report.rows) == (True, [], 0)
        assert report.statistics["count_1h"]["rows"] == 0
