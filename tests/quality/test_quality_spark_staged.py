"""Runs that Spark staged from landed purchases pass every example view's suite."""

from __future__ import annotations

import pytest

from jobs.compute_features import stage_view
from jstore.lake_fs import lake_root
from jstore.quality import validate_staged
from tests.compute.windowing_helpers import at, write_landing

PURCHASES = [
    {"user_id": u, "merchant_id": m, "amount": a, "category": c, "ts": at(t)}
    for u, m, a, c, t in [
        ("u1", "m1", 10.0, "books", "10:15"),
        ("u1", "m2", 250.0, "toys", "10:45"),
        ("u2", "m1", 5.5, "books", "13:05"),
        ("u1", "m1", 30.0, "books", "2d 09:00"),
    ]
]


@pytest.mark.e2e
@pytest.mark.spark
@pytest.mark.parametrize(
    "view, start, end",
    [
        ("user_purchases", at("00:00"), at("3d 00:00")),
        ("user_categories", at("00:00"), at("3d 00:00")),
        ("user_big_spends", at("00:00"), at("3d 00:00")),
        ("merchant_sales", at("00:00"), at("4d 00:00")),
    ],
)
def test_spark_staged_rows_pass(spark, settings, registry, example_repo, view, start, end):
    registry.apply(example_repo)
    write_landing(lake_root(settings), PURCHASES, registry.get_source("purchases"))
    resolved = registry.get_view(view)
    staged = stage_view(spark, settings, resolved, start, end, run_id=f"compute-{view}")

    report = validate_staged(settings, registry, resolved, staged)

    assert staged.rows > 0
    assert (report.success, report.failed, report.rows) == (True, [], staged.rows)
