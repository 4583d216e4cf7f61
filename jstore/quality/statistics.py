"""Feature statistics of one staged run, stored with its `validate` run.

Numeric features (int64, float64): over the finite values, mean, sample stddev (ddof 1) and the
quantiles p05 p25 p50 p75 p95 (linear interpolation, as numpy's default), plus the bins that
the next run's drift is measured against (see drift.py). Every feature: rows and null share;
strings also their distinct count. Values are plain floats (JSON); absent ones are None.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jstore.model import NUMERIC, ResolvedView

QUANTILES: dict[str, float] = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}


def finite_and_missing(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """The finite values of a numeric column as floats, and how many rows are null, NaN or inf."""
    values = np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    finite = values[np.isfinite(values)]
    return finite, len(values) - len(finite)


def bin_shares(values: np.ndarray, missing: int, edges: list[float]) -> list[float]:
    """Shares of all rows in the bins (-inf, e0], (e0, e1], …, (ek, inf), then the missing ones."""
    rows = len(values) + missing
    if rows == 0:
        return []
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return [float(c) / rows for c in counts] + [missing / rows]


def feature_statistics(table: pa.Table, view: ResolvedView) -> dict[str, dict[str, Any]]:
    return {
        spec.name: _numeric(table[spec.name])
        if spec.dtype in NUMERIC
        else _other(table[spec.name], spec.dtype == "string")
        for spec in view.features
        if spec.name in table.column_names
    }


def _numeric(column: pa.ChunkedArray) -> dict[str, Any]:
    values, missing = finite_and_missing(column)
    rows = len(column)
    stats: dict[str, Any] = {
        "rows": rows,
        "null_share": _share(column.null_count, rows),
        "non_finite": missing - column.null_count,
        "mean": float(values.mean()) if len(values) else None,
        "stddev": float(values.std(ddof=1)) if len(values) > 1 else None,
        "min": float(values.min()) if len(values) else None,
        "max": float(values.max()) if len(values) else None,
    }
    quantiles = np.quantile(values, list(QUANTILES.values())) if len(values) else None
    for i, name in enumerate(QUANTILES):
        stats[name] = None if quantiles is None else float(quantiles[i])
    edges = [] if quantiles is None else sorted({float(q) for q in quantiles})
    stats["bins"] = {"edges": edges, "shares": bin_shares(values, missing, edges)}
    return stats


def _other(column: pa.ChunkedArray, is_string: bool) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "rows": len(column),
        "null_share": _share(column.null_count, len(column)),
    }
    if is_string:
        stats["distinct"] = pc.count_distinct(column, mode="only_valid").as_py()
    return stats


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
