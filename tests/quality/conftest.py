"""Staged runs written directly with pyarrow, for the quality gate's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jstore.config import Settings
from jstore.lake import staging_dir
from jstore.model import ResolvedView
from jstore.registry import Registry
from jstore.repo import FeatureRepo
from jstore.staging import StagedRun
from tests.quality.purchase_rows import ARROW, END, START


@pytest.fixture
def user_purchases(registry: Registry, example_repo: FeatureRepo) -> ResolvedView:
    registry.apply(example_repo)
    return example_repo.resolve("user_purchases", 1)


@pytest.fixture
def stage(settings: Settings, user_purchases: ResolvedView) -> Callable[..., StagedRun]:
    """Write rows as a complete staged run of user_purchases v1 over [START, END)."""

    def write(rows: list[dict[str, Any]], run_id: str = "compute-test") -> StagedRun:
        view = user_purchases
        path = staging_dir(settings, view.name, run_id)
        path.mkdir(parents=True)
        schema = pa.schema(
            [pa.field(k, ARROW[d]) for k, d in view.key_dtypes.items()]
            + [pa.field("feature_ts", pa.timestamp("us", tz="UTC"))]
            + [pa.field(f.name, ARROW[f.dtype]) for f in view.features]
        )
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path / "part-00000.parquet")
        staged = StagedRun(
            view=view.name,
            version=view.version,
            run_id=run_id,
            start=START,
            end=END,
            rows=len(rows),
            path=path,
        )
        staged.write_manifest()
        return staged

    return write
