"""Fixtures of the compute tests: a lake folder and `compute` (events in, staged rows out).

`compute` runs every interval two ways and checks they agree: re-tiling everything from the
landing zone (`retile`), then again from the tiles that run stored (jobs/tile_store.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from jobs.compute_features import changed_rows
from tests.compute.windowing_helpers import resolved, write_landing


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def compute(spark, lake):
    """`compute(view, events, start, end)` -> the staged rows as sorted tuples, the same from
    re-tiled and from stored tiles."""

    def rows(rv, start: datetime, end: datetime, retile: bool) -> list[tuple]:
        df = changed_rows(spark, rv, str(lake), start, end, retile=retile)
        assert df.columns == [*rv.join_keys, "feature_ts", *(f.name for f in rv.features)]
        return sorted(tuple(r.values()) for r in df.toArrow().to_pylist())

    def run(view, events: list[dict], start: datetime, end: datetime) -> list[tuple]:
        rv = resolved(view)
        write_landing(lake, events)
        retiled = rows(rv, start, end, retile=True)
        assert rows(rv, start, end, retile=False) == retiled, "stored tiles differ from re-tiled"
        return retiled

    return run
