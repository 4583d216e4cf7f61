"""Feature statistics and the drift score, on data small enough to check by hand."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from jstore.model import Aggregation, WindowedFeatureView, resolve
from jstore.quality.drift import drift_scores, population_stability_index
from jstore.quality.statistics import feature_statistics
from tests.factories import staged_schema
from tests.quality.purchase_rows import START, purchase_row


def purchases_table(view, rows):
    return pa.Table.from_pylist(rows, schema=staged_schema(view))


def test_numeric_statistics_are_exact(example_repo):
    view = example_repo.resolve("user_purchases", 1)
    amounts = [[], [1.0], [1.0, 3.0], [2.0, 2.0, 2.0], [4.0] * 4]
    table = purchases_table(view, [purchase_row(f"u{i}", 1, a) for i, a in enumerate(amounts)])

    stats = feature_statistics(table, view)
    count, avg = stats["count_1h"], stats["amount_avg_1h"]

    assert count.pop("bins") == {
        "edges": pytest.approx([0.2, 1.0, 2.0, 3.0, 3.8]),
        "shares": pytest.approx([0.2, 0.2, 0.2, 0.2, 0.0, 0.2, 0.0]),
    }
    assert count == pytest.approx(
        {
            "rows": 5,
            "null_share": 0.0,
            "non_finite": 0,
            "mean": 2.0,
            "stddev": math.sqrt(2.5),
            "min": 0.0,
            "max": 4.0,
            "p05": 0.2,
            "p25": 1.0,
            "p50": 2.0,
            "p75": 3.0,
            "p95": 3.8,
        }
    )
    # avg over [] is null: a fifth of the rows; the others are 1, 2, 2, 4
    assert avg.pop("bins") == {
        "edges": pytest.approx([1.15, 1.75, 2.0, 2.5, 3.7]),
        "shares": pytest.approx([0.2, 0.0, 0.4, 0.0, 0.0, 0.2, 0.2]),
    }
    assert avg == pytest.approx(
        {
            "rows": 5,
            "null_share": 0.2,
            "non_finite": 0,
            "mean": 2.25,
            "stddev": math.sqrt(4.75 / 3),
            "min": 1.0,
            "max": 4.0,
            "p05": 1.15,
            "p25": 1.75,
            "p50": 2.0,
            "p75": 2.5,
            "p95": 3.7,
        }
    )
    assert set(stats) == {f.name for f in view.features}


def test_string_statistics_count_distinct_values(example_repo):
    last_category = WindowedFeatureView(
        name="user_last_category",
        entities=["user"],
        source="purchases",
        step="1h",
        aggregations=[Aggregation(function="last", column="category", windows=["1d"])],
    )
    view = resolve(last_category, 1, example_repo.entities, example_repo.sources)
    table = purchases_table(
        view,
        [
            {"user_id": u, "feature_ts": START, "category_last_1d": c}
            for u, c in [("u1", "books"), ("u2", "toys"), ("u3", "books"), ("u4", None)]
        ],
    )

    assert feature_statistics(table, view) == {
        "category_last_1d": {"rows": 4, "null_share": 0.25, "distinct": 2}
    }
    assert drift_scores(table, view, feature_statistics(table, view)) == {}


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert population_stability_index([0.5, 0.5], [0.9, 0.1]) == pytest.approx(
        0.4 * math.log(0.9 / 0.5) - 0.4 * math.log(0.1 / 0.5)
    )
    # an empty bin counts as 1e-4 of the rows, so the score stays finite
    assert population_stability_index([1.0, 0.0], [0.5, 0.5]) == pytest.approx(
        -0.5 * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    )
