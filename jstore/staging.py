"""A staged run: the Parquet rows one compute run wrote, waiting for validation and publish.

`<lake>/staging/<view>/<run>/` holds `part-*.parquet` (rows of `staged_schema(view)`: the join
keys, `feature_ts`, the features), `_request.json` (the compute request that staged them, see
jstore/request.py) and `_manifest.json`, written last, which makes the folder a complete
staged run.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jstore.arrow_types import ARROW_TYPES
from jstore.config import Settings
from jstore.durations import as_utc
from jstore.lake import staging_dir
from jstore.lake_fs import LakePath
from jstore.model import DType, ResolvedView

if TYPE_CHECKING:
    from jstore.request import ComputeRequest

MANIFEST = "_manifest.json"
PARQUET_FILES = "*.parquet"


def staged_dtypes(view: ResolvedView) -> dict[str, DType]:
    """The one definition of a staged row of `view`, in order: the join keys, `feature_ts`, the
    features, each with its dtype.

    Every other spelling of the shape derives from it: `staged_schema` (Arrow: the Parquet files,
    publish's COPY, the test factories), the offline table's columns, the offline reads, the
    quality suite's column list, the Spark job's output columns.
    """
    return {
        **{key: view.key_dtypes[key] for key in view.join_keys},
        "feature_ts": "timestamp",
        **{f.name: f.dtype for f in view.features},
    }


def staged_columns(view: ResolvedView) -> list[str]:
    return list(staged_dtypes(view))


def staged_schema(view: ResolvedView) -> pa.Schema:
    """The Arrow schema of a staged run's rows."""
    return pa.schema([(name, ARROW_TYPES[dtype]) for name, dtype in staged_dtypes(view).items()])


def as_staged(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The columns of `schema` (a staged schema, or some of its columns) from a batch read from
    staged Parquet, cast to their staged types: what publish stores, and what reading the
    files back returns."""
    return pa.RecordBatch.from_arrays(
        [batch.column(f.name).cast(f.type) for f in schema], schema=schema
    )


PARQUET_CODEC = "zstd"


def parquet_write_options(float_columns: list[str]) -> dict[str, str]:
    """Spark's Parquet write options for JStore's own files (staged rows, stored tiles): zstd,
    and no dictionary for the float columns.

    A float feature or partial repeats few values: Parquet builds each page's dictionary, and for
    most of them (sums and averages over days) finds it too large and writes the page plain
    anyway. Measured on the 1M-event benchmark's staged rows (docs/compute.md, "Parquet"):
    plain floats and zstd cost 27 % less CPU to write and 40 % less to read than snappy with
    dictionaries, in 10 % smaller files. Integer and string columns keep their dictionaries.
    `parquet.enable.dictionary#<column>` reaches parquet-mr through the write's options."""
    return {
        "compression": PARQUET_CODEC,
        **{f"parquet.enable.dictionary#{name}": "false" for name in float_columns},
    }


def staged_write_options(view: ResolvedView) -> dict[str, str]:
    """`parquet_write_options` for the staged rows of `view`."""
    floats = [name for name, dtype in staged_dtypes(view).items() if dtype == "float64"]
    return parquet_write_options(floats)


def parquet_rows(files: list[LakePath]) -> int:
    """The rows of Parquet files, from their footers."""
    total = 0
    for file in files:
        with file.open_input() as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


class StagedRun(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    view: str
    version: int
    run_id: str
    start: datetime
    end: datetime
    rows: int
    path: LakePath = Field(exclude=True)
    """The folder; not stored in the manifest, so a staged run can be moved."""

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, ts: datetime) -> datetime:
        return as_utc(ts)

    @property
    def parquet_files(self) -> list[LakePath]:
        return self.path.glob(PARQUET_FILES)

    @classmethod
    def written(
        cls, view: ResolvedView, run_id: str, start: datetime, end: datetime, path: LakePath
    ) -> StagedRun:
        """The staged run whose rows were just written to `path` (no manifest yet), its rows
        counted from the Parquet footers: no Spark job reads the files back."""
        rows = parquet_rows(path.glob(PARQUET_FILES))
        return cls(
            view=view.name,
            version=view.version,
            run_id=run_id,
            start=start,
            end=end,
            rows=rows,
            path=path,
        )

    def write_manifest(self) -> None:
        (self.path / MANIFEST).write_text(self.model_dump_json(indent=2))

    def request(self) -> ComputeRequest:
        """The compute request that staged this run (its resolved view, interval and flags)."""
        from jstore.request import REQUEST, ComputeRequest

        return ComputeRequest.load(self.path / REQUEST)

    @classmethod
    def load(cls, path: LakePath) -> StagedRun:
        try:
            manifest = (path / MANIFEST).read_text()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path} is not a complete staged run (no {MANIFEST})"
            ) from None
        return cls.model_validate({**json.loads(manifest), "path": path})

    @classmethod
    def find(cls, settings: Settings, view: str, run_id: str) -> StagedRun:
        return cls.load(staging_dir(settings, view, run_id))
