"""Fixtures of the compute tests: a lake folder and `compute` (events in, staged rows out)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from jobs.compute_features import compute_view
from tests.compute.windowing_helpers import resolved, write_landing


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def compute(spark, lake):
    """`compute(view, events, start, end)` -> the staged rows as sorted tuples."""

    def run(view, events: list[dict], start: datetime, end: datetime) -> list[tuple]:
        rv = resolved(view)
        write_landing(lake, events)
        df = compute_view(spark, rv, str(lake / "landing" / "clicks"), start, end)
        assert df.columns == [*rv.join_keys, "feature_ts", *(f.name for f in rv.features)]
        return sorted(tuple(r.values()) for r in df.toArrow().to_pylist())

    return run
