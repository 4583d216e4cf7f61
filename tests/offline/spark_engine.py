"""The Spark engine of the point-in-time join, called as the default engine's
`OfflineStore.point_in_time_join` is: entity rows in, the joined table and its uncovered rows
per view out, through the export job's own functions on the tests' session."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.export_training_set import export
from jstore.config import Settings
from jstore.export_spark import build_request
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.pit_join import Coverage, JoinResult


def spark_point_in_time_join(
    spark,
    settings: Settings,
    folder: Path,
    entity_rows: pa.Table,
    features: list[tuple[ResolvedView, FeatureSpec]],
    coverage: Coverage,
) -> JoinResult:
    run = uuid.uuid4().hex[:8]
    entities = folder / f"entities-{run}.parquet"
    pq.write_table(entity_rows, entities)
    out = folder / f"out-{run}.parquet"
    request = build_request(settings, entities, out, features, coverage, f"export-{run}")
    outcome = export(spark, settings, request)
    return JoinResult(pq.read_table(out), outcome.uncovered_rows)
