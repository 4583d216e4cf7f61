"""Factories shared by the test folders: staged runs written directly with pyarrow (no Spark),
in the shape compute writes them (`jstore.staging.staged_schema`, with the request and the
manifest), and the gate every publish goes through."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jstore.config import Settings
from jstore.lake import staging_dir
from jstore.model import ResolvedView
from jstore.pipeline import publish, validate
from jstore.registry import Registry
from jstore.request import ComputeRequest
from jstore.staging import StagedRun, staged_schema


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
    ComputeRequest(view=view, start=start, end=end, run_id=run_id).write(path)
    table = pa.Table.from_pylist(rows, schema=staged_schema(view))
    size = -(-len(rows) // files) if rows else 0
    for i in range(files):
        part = path / f"part-{i:05d}.parquet"
        rows_of_file = table.slice(i * size, size) if size else table
        pq.write_table(rows_of_file, part.path, filesystem=part.fs)
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


def validate_and_publish(settings: Settings, registry: Registry, staged: StagedRun) -> int:
    """What the pipeline does with a staged run: validate it, then publish it (rows published)."""
    validate(settings, registry, staged)
    return publish(settings, registry, staged)
