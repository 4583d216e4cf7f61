"""Drift of each numeric feature against the previous successful validation of the same version.

The score is the Population Stability Index over the previous run's quantile bins:
the bins are (-inf, p05], (p05, p25], (p25, p50], (p50, p75], (p75, p95], (p95, inf) of the
previous run (equal quantiles merged), plus one bin for missing values (null, NaN, inf), and

    PSI = sum over bins of (a - e) * ln(a / e)

with `e` the previous run's share of rows in the bin and `a` this run's, both floored at 1e-4
so that an empty bin gives a large finite score rather than infinity. Identical distributions
score 0; by the usual rule of thumb < 0.1 is stable and > 0.2 (`Settings.drift_threshold`) a
shift worth a look. A feature without a previous run, or with no rows then or now, has no score.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from jstore.model import NUMERIC, ResolvedView
from jstore.quality.statistics import bin_shares, finite_and_missing

SHARE_FLOOR = 1e-4


def population_stability_index(expected: list[float], actual: list[float]) -> float:
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, SHARE_FLOOR), max(a, SHARE_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def drift_scores(
    table: pa.Table, view: ResolvedView, previous: dict[str, dict[str, Any]]
) -> dict[str, float]:
    """PSI of each numeric feature of `table` against the bins in `previous` statistics."""
    scores = {}
    for spec in view.features:
        bins = previous.get(spec.name, {}).get("bins")
        if spec.dtype not in NUMERIC or not bins or not bins["shares"]:
            continue
        if spec.name not in table.column_names or table.num_rows == 0:
            continue
        values, missing = finite_and_missing(table[spec.name])
        actual = bin_shares(values, missing, bins["edges"])
        scores[spec.name] = population_stability_index(bins["shares"], actual)
    return scores
