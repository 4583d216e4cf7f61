"""Fixtures of the compute tests: a lake folder and `compute` (events in, staged rows out).

`compute` runs every interval two ways and checks they agree: re-tiling everything from the
landing zone (`retile`), then again from the tiles that run stored (jobs/tile_store.py). With
Spark's generated code; a test marked `both_evaluations` (tests/compute/windowing_helpers.py)
runs a second time interpreted, as a small local run is (jstore/spark_local.py
`SMALL_RUN_CONF`: also without adaptive execution)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from jobs.compute_features import changed_rows
from jstore.spark_local import SMALL_RUN_CONF
from tests.compute.windowing_helpers import resolved, write_landing


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def evaluation(request, spark) -> Iterator[str]:
    """How the session evaluates expressions while the test runs: "generated code" unless the
    test is parametrized otherwise (`both_evaluations`)."""
    how = getattr(request, "param", "generated code")
    conf = SMALL_RUN_CONF if how == "interpreted" else {}
    before = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    yield how
    for key, value in before.items():
        spark.conf.unset(key) if value is None else spark.conf.set(key, value)


@pytest.fixture
def compute(spark, lake, evaluation):
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
