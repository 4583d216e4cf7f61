"""`jstore export --engine spark`: the training-set export as a Spark job.

The launcher resolves what the job needs once (the features' views, their published coverage
from the registry, which offline tables exist) into an `ExportRequest`, written as
`<lake>/exports/<run>/_request.json` (jstore/request.py, as compute's request), and runs
`spark-submit jobs/export_training_set.py --request <path>` through the one launcher
(jstore/spark_submit.py), or hands the job to the caller's `launch` (a SparkSubmitOperator): the
job never opens MongoDB. The job writes the training set as a Parquet folder (part files in
entity-row order) and `_result.json` (rows, uncovered rows per view, or the input error).

The semantics are the default engine's (jstore/offline/pit_join.py), checked by the same golden
and oracle tests. The entity rows' columns are checked here first, with the default engine's
messages; a CSV entity file is read here by the default engine's reader (join keys typed by
their view, text is text) and handed to the job as Parquet.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from jstore.config import Settings
from jstore.errors import InputError
from jstore.export import ExportJoin, read_entity_rows
from jstore.lake import exports_dir, safe_run_id
from jstore.lake_fs import local_path
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.pit_join import Coverage, _existing_tables, _group_by_view, _key_dtypes
from jstore.request import RequestFile
from jstore.spark_submit import SparkJob, SparkJobFailed, spark_job, submit, with_jars

RESULT = "_result.json"


class FeatureRef(BaseModel):
    table: str
    """The view version's table, a key of `ExportRequest.views`."""
    feature: str


class ExportRequest(RequestFile):
    """What one Spark export joins: resolved views, features in order, coverage, paths."""

    run_id: str
    entities: str
    """The entity rows, a Parquet file (local path or lake URI)."""
    out: str
    """The training set: a Parquet folder, its part files in entity-row order."""
    result: str
    """Where the job writes `_result.json`."""
    views: dict[str, ResolvedView]
    features: list[FeatureRef]
    coverage: Coverage
    stored: list[str]
    """The views' tables that exist (a view never published has none)."""

    def resolved(self) -> list[tuple[ResolvedView, FeatureSpec]]:
        return [
            (self.views[f.table], self.views[f.table].feature(f.feature)) for f in self.features
        ]


class ExportOutcome(BaseModel):
    """The job's `_result.json`: rows and uncovered rows, or the input error that stopped it."""

    rows: int = 0
    uncovered_rows: dict[str, int] = {}
    error: str | None = None


def export_dir(settings: Settings, run_id: str) -> Path:
    """The run's folder in a local lake (TypeError on an object store: docs/scaling.md)."""
    return Path(exports_dir(settings) / safe_run_id(run_id))


def build_request(
    settings: Settings,
    entities_path: Path,
    out_path: Path,
    resolved: list[tuple[ResolvedView, FeatureSpec]],
    coverage: Coverage,
    run_id: str,
) -> ExportRequest:
    """Check the entity file's columns (the default engine's messages) and resolve the rest."""
    if out_path.suffix != ".parquet":
        raise InputError(f"out: {out_path.name}: the spark engine writes Parquet (a .parquet path)")
    if not entities_path.exists():
        raise FileNotFoundError(f"entities: no such file {entities_path}")
    folder = export_dir(settings, run_id)
    if entities_path.suffix == ".csv":
        folder.mkdir(parents=True, exist_ok=True)
        parquet = folder / "entities.parquet"
        pq.write_table(read_entity_rows(entities_path, resolved), parquet)
        entities_path = parquet
    elif entities_path.suffix != ".parquet":
        raise InputError(f"entities: {entities_path.name} must end with .parquet or .csv")
    elif _has_nanoseconds(pq.read_schema(entities_path)):
        entities_path = _as_microseconds(entities_path, folder / "entities.parquet")
    names = pq.read_schema(entities_path).names
    parts = _group_by_view(resolved, names)
    _key_dtypes(parts, names)
    with psycopg.connect(settings.postgres_dsn.get_secret_value()) as conn:
        stored = _existing_tables(conn, settings.offline_schema, parts)
    views = {view.table: view for view, _ in resolved}
    return ExportRequest(
        run_id=run_id,
        entities=str(entities_path.resolve()),
        out=str(out_path.resolve()),
        result=str((folder / RESULT).resolve()),
        views=views,
        features=[FeatureRef(table=view.table, feature=spec.name) for view, spec in resolved],
        coverage=coverage,
        stored=sorted(stored),
    )


def _has_nanoseconds(schema: pa.Schema) -> bool:
    return any(pa.types.is_timestamp(f.type) and f.type.unit == "ns" for f in schema)


def _as_microseconds(path: Path, copy: Path) -> Path:
    """A copy of a Parquet file with nanosecond timestamps (pandas' default) in microseconds,
    which Spark reads (it refuses TIMESTAMP(NANOS)); streamed a row group at a time. A time
    with nanoseconds is refused rather than truncated."""
    copy.parent.mkdir(parents=True, exist_ok=True)
    source = pq.ParquetFile(path)
    try:
        with pq.ParquetWriter(copy, source.schema_arrow, coerce_timestamps="us") as writer:
            for i in range(source.num_row_groups):
                writer.write_table(source.read_row_group(i))
    except pa.ArrowInvalid as e:
        raise InputError(f"entities: {path.name} has times finer than microseconds ({e})") from None
    return copy


def export_job(settings: Settings, request_path: Path, run_id: str) -> SparkJob:
    """`spark-submit jobs/export_training_set.py --request <path>`, with the JDBC driver (the
    job reads the offline tables by JDBC)."""
    job = spark_job(
        "export_training_set.py", ["--request", str(request_path)], f"jstore-export-{run_id}"
    )
    return with_jars(job, settings)


def spark_export(
    settings: Settings,
    entities_path: Path,
    out_path: Path,
    resolved: list[tuple[ResolvedView, FeatureSpec]],
    launch: Callable[[SparkJob], object] | None = None,
) -> ExportJoin:
    """The spark engine of `jstore.export.export_training_set`: a Spark job joins into a
    Parquet folder at `out_path`. `launch` starts the job (default: spark-submit as a
    subprocess)."""

    def join(run_id: str, coverage: Coverage) -> tuple[int, dict[str, int]]:
        try:
            request = build_request(settings, entities_path, out_path, resolved, coverage, run_id)
            path = request.write(local_path(export_dir(settings, run_id)))
            Path(request.result).unlink(missing_ok=True)
            job = export_job(settings, path, run_id)
            try:
                if launch is None:
                    submit(settings, job, description="spark export")
                else:
                    launch(job)
            except SparkJobFailed:
                if Path(request.result).exists():  # the job refused the input, naming the row
                    read_outcome(Path(request.result))
                raise
            outcome = read_outcome(Path(request.result))
        finally:
            (export_dir(settings, run_id) / "entities.parquet").unlink(missing_ok=True)
        return outcome.rows, outcome.uncovered_rows

    return join


def read_outcome(path: Path) -> ExportOutcome:
    """The job's result; its input error (a bad timestamp or key, naming the row) raised as
    InputError."""
    outcome = ExportOutcome.model_validate(json.loads(path.read_text()))
    if outcome.error:
        raise InputError(outcome.error)
    return outcome


def replace_folder(tmp: Path, out: Path) -> None:
    """Move a finished Parquet folder to `out`, replacing what was there."""
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    tmp.replace(out)
