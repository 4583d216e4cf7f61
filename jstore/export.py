"""Training-set export: entity rows from a file, point-in-time joined, written to a file.

Input and output are Parquet or CSV, chosen by the file extension; the output may be a local
path or an object store URI (`s3://bucket/key.parquet`, jstore/lake_fs.py `location`). In a
CSV input the join keys are read with their view's type (so `007` stays the string `007`) and
`event_timestamp` as ISO-8601 text; other columns are kept as Arrow infers them. Text is text:
`NA`, `null`, `#N/A` and the like are strings, never nulls; an empty cell is the empty string
in a string column and null in any other (a number, boolean or timestamp column, or
`event_timestamp`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel

from jstore import progress
from jstore.arrow_types import ARROW_TYPES
from jstore.config import Settings
from jstore.errors import InputError
from jstore.lake_fs import LakePath, location
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline import JoinResult, OfflineStore, output_column, pit_join
from jstore.offline.pit_join import EVENT_TIMESTAMP, Coverage, EntityBatches
from jstore.offline.store import retained_coverage
from jstore.registry import Registry, RunRecord, new_run_id

if TYPE_CHECKING:
    from jstore.spark_submit import SparkJob

FORMATS = (".parquet", ".csv")


class ExportResult(BaseModel):
    run_id: str
    out_path: str
    """The training set's file (a local path, or its URI on an object store)."""
    rows: int
    columns: list[str]
    """The feature columns added, `<view>__<feature>`, in the order asked."""
    uncovered_rows: dict[str, int]
    """Per view table: entity rows past its published coverage (their features are null)."""


def resolve_features(
    registry: Registry, features: list[str] | None, service: str | None
) -> list[tuple[ResolvedView, FeatureSpec]]:
    if bool(features) == bool(service):
        raise InputError("features: give either feature references or a service, not both")
    return registry.resolve_refs(features or [], service=service)


def join_features(
    settings: Settings,
    registry: Registry,
    entity_rows: pa.Table,
    features: list[tuple[ResolvedView, FeatureSpec]],
) -> JoinResult:
    """The point-in-time join of `entity_rows` with each view's published coverage, and its
    rows past coverage per view."""
    with OfflineStore(settings) as store:
        return store.point_in_time_join(
            entity_rows, features, published_coverage(registry, features)
        )


def published_coverage(
    registry: Registry, features: list[tuple[ResolvedView, FeatureSpec]]
) -> Coverage:
    """Per view table, the intervals published and still kept: the registry's coverage less
    what retention has dropped (retention.py), so both engines read a dropped range as past
    coverage (null), not as empty windows."""
    coverage = {view.table: registry.coverage(view.name, view.version) for view, _ in features}
    return retained_coverage(coverage, [view for view, _ in features])


def read_entity_rows(path: Path, features: list[tuple[ResolvedView, FeatureSpec]]) -> pa.Table:
    """Entity rows from a .parquet or .csv file (see the module docstring for CSV types)."""
    _check_format(path, "entities")
    if not path.exists():
        raise FileNotFoundError(f"entities: no such file {path}")
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        try:
            table = read_entity_csv(path, features)
        except pa.ArrowInvalid as e:
            raise InputError(f"entities: {path.name} is not a readable CSV file ({e})") from None
    check_key_text(table, features)
    return table


def read_entity_csv(
    source: Path | BinaryIO, features: list[tuple[ResolvedView, FeatureSpec]]
) -> pa.Table:
    """Entity rows from CSV: join keys with their view's type (`007` stays the string `007`),
    `event_timestamp` as ISO-8601 text, other columns as Arrow infers them.

    Only an empty cell may be null, and only outside string columns (`NA`, `null`, `#N/A`…
    are text); an empty `event_timestamp` is a row without a time.
    """
    key_types = {
        key: ARROW_TYPES[view.key_dtypes[key]] for view, _ in features for key in view.join_keys
    }
    options = pacsv.ConvertOptions(
        column_types={**key_types, EVENT_TIMESTAMP: pa.string()},
        null_values=[""],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    table = pacsv.read_csv(source, convert_options=options)
    if EVENT_TIMESTAMP not in table.column_names:
        return table
    times = table[EVENT_TIMESTAMP]
    no_time = pc.equal(pc.utf8_trim_whitespace(times), "")
    return table.set_column(
        table.schema.get_field_index(EVENT_TIMESTAMP),
        EVENT_TIMESTAMP,
        pc.if_else(no_time, pa.scalar(None, pa.string()), times),
    )


def check_key_text(entity_rows: pa.Table, features: list[tuple[ResolvedView, FeatureSpec]]) -> None:
    """Refuse key text that PostgreSQL cannot hold (a NUL character), naming column and row
    (the join checks it too: this is for readers that want the error before the join)."""
    keys = {key for view, _ in features for key in view.join_keys}
    pit_join.check_key_text(
        {key: entity_rows[key].combine_chunks() for key in keys if key in entity_rows.column_names}
    )


def write_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch], path: LakePath) -> int:
    """Write batches as they come to Parquet or CSV (by extension), through a hidden temporary
    name then moved (on an object store a server-side copy), so no half file is seen; returns
    the rows written.

    A batch is written on a second thread while the next one is made (the writers release
    the GIL), one batch at a time, so memory holds two batches. Parquet dictionary-encodes only
    text columns: for numbers the dictionary costs half the write and saves a few percent."""
    _check_format(path, "out")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    rows = 0
    with tmp.open_output() as stream:
        if path.suffix == ".parquet":
            text = [
                f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)
            ]
            writer = pq.ParquetWriter(stream, schema, use_dictionary=text)
        else:
            writer = pacsv.CSVWriter(stream, schema)
        with writer, ThreadPoolExecutor(1) as writing:
            written: Future | None = None
            for batch in batches:
                if written is not None:
                    written.result()
                written = writing.submit(writer.write_batch, batch)
                rows += batch.num_rows
                progress.advance(batch.num_rows)
            if written is not None:
                written.result()
    tmp.replace(path)
    return rows


def entity_batches(
    path: Path, features: list[tuple[ResolvedView, FeatureSpec]]
) -> tuple[pa.Schema, EntityBatches]:
    """The entity rows of a file as a schema and a re-readable stream of batches (the join
    checks their keys and times as it reads them).

    A Parquet file is read a batch at a time (each pass reads it again, the first pass only the
    columns it needs), so memory holds one batch, not the file. A CSV file is read whole
    (`read_entity_rows`): its column types are inferred from every row.
    """
    if path.suffix == ".parquet" and path.exists():
        parquet = pq.ParquetFile(path)

        def batches(columns: list[str] | None, rows: int) -> Iterator[pa.RecordBatch]:
            yield from pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns)

        return parquet.schema_arrow, batches
    table = read_entity_rows(path, features)

    def table_batches(columns: list[str] | None, rows: int) -> list[pa.RecordBatch]:
        return (table if columns is None else table.select(columns)).to_batches(rows)

    return table.schema, table_batches


Engine = Literal["default", "spark"]
ExportJoin = Callable[[str, Coverage], tuple[int, dict[str, int]]]
"""An engine's export, once its input is checked: (run id, coverage) → (rows written, rows past
coverage per view table)."""


def export_training_set(
    settings: Settings,
    registry: Registry,
    entities_path: Path,
    out_path: str | Path,
    features: list[str] | None = None,
    service: str | None = None,
    engine: Engine = "default",
    launch: Callable[[SparkJob], object] | None = None,
) -> ExportResult:
    """Join the entity rows of `entities_path` with the features and write `out_path` (a local
    path or an object store URI), as a recorded export run. `engine`: default (PostgreSQL + this
    process) or spark (a Spark job writing a Parquet folder on a local path,
    jstore/export_spark.py, started by `launch` when given)."""
    out = location(settings, out_path)
    resolved = resolve_features(registry, features, service)
    details = {"entities": str(entities_path), "out": str(out)}
    if engine == "spark":
        from jstore.export_spark import spark_export

        if not out.is_local:
            raise InputError(f"out: {out}: the spark engine writes to a local path")
        join = spark_export(settings, entities_path, Path(out), resolved, launch)
        details["engine"] = "spark"
    else:
        join = _default_export(settings, entities_path, out, resolved, service)
    record = RunRecord(
        run_id=new_run_id("export"), kind="export", subject=service or "*", details=details
    )
    with registry.run(record):
        rows, uncovered = join(record.run_id, published_coverage(registry, resolved))
        record.rows, record.details = rows, {**details, "uncovered_rows": uncovered}
    run_id = record.run_id
    columns = list(dict.fromkeys(output_column(view, spec) for view, spec in resolved))
    return ExportResult(
        run_id=run_id, out_path=str(out), rows=rows, columns=columns, uncovered_rows=uncovered
    )


def _default_export(
    settings: Settings,
    entities_path: Path,
    out: LakePath,
    resolved: list[tuple[ResolvedView, FeatureSpec]],
    service: str | None,
) -> ExportJoin:
    """The default engine: the entity file streamed through the join into `out`."""
    _check_format(out, "out")
    schema, batches = entity_batches(entities_path, resolved)

    def join(run_id: str, coverage: Coverage) -> tuple[int, dict[str, int]]:
        with OfflineStore(settings) as store, progress.task(f"export {service or 'features'}"):
            prepared = store.prepared_join(batches, schema, resolved, coverage)
            rows = write_batches(prepared.output_schema, prepared.batches(batches), out)
        return rows, prepared.uncovered_rows

    return join


def _check_format(path: Path | LakePath, field: str) -> None:
    if path.suffix not in FORMATS:
        raise InputError(f"{field}: {path.name} must end with .parquet or .csv")
