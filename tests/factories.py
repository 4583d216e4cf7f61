"""Factories shared by the test folders: staged runs written directly with pyarrow (no Spark),
in the shape compute writes them (jobs/compute_features.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jstore.arrow_types import ARROW_TYPES
from jstore.config import Settings
from jstore.lake import staging_dir
from jstore.model import ResolvedView
from jstore.staging import StagedRun


def staged_schema(view: ResolvedView) -> pa.Schema:
    """The columns of a staged run of `view`: join keys, feature_ts, features."""
    return pa.schema(
        [(k, ARROW_TYPES[view.key_dtypes[k]]) for k in view.join_keys]
        + [("feature_ts", ARROW_TYPES["timestamp"])]
        + [(f.name, ARROW_TYPES[f.dtype]) for f in view.features]
    )


def stage_rows(
    settings: Settings,
    view: ResolvedView,
    rows: list[dict[str, Any]],
    start: datetime,
    end: datetime,
    run_id: str,
    files: int = 1,
) -> StagedRun:
    """Write `rows` (dicts of join keys, feature_ts, features; a missing column is null) as a
    complete staged run of [start, end), split into `files` Parquet files."""
    path = staging_dir(settings, view.name, run_id)
    path.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=staged_schema(view))
    size = -(-len(rows) // files) if rows else 0
    for i in range(files):
        pq.write_table(
            table.slice(i * size, size) if size else table, path / f"part-{i:05d}.parquet"
        )
    staged = StagedRun(
        view=view.name,
        version=view.version,
        run_id=run_id,
        start=start,
        end=end,
        rows=len(rows),
        path=path,
    )
    staged.write_manifest()
    return staged
