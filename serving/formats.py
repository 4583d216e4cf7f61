"""Streaming a pyarrow table as Parquet, CSV or JSON, a batch at a time."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jstore.durations import iso
from serving.json_values import dumps

Format = Literal["parquet", "csv", "json"]
MEDIA_TYPES: dict[str, str] = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "json": "application/json",
}
BATCH_ROWS = 65536


class _Sink(io.RawIOBase):
    """Collects written bytes; counts its position so writers see a growing file."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.chunks.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def check_writable(schema: pa.Schema, fmt: Format) -> None:
    """Refuse, before streaming starts, a column the format cannot hold (ValueError naming it):
    CSV holds no lists or structs (an uploaded Parquet file's), Parquet no struct without fields.
    """
    for field in schema:
        if fmt == "csv" and pa.types.is_nested(field.type):
            raise ValueError(
                f"{field.name}: {field.type} values cannot be written as CSV; ask for "
                "format=json or format=parquet"
            )
        if fmt == "parquet" and pa.types.is_struct(field.type) and field.type.num_fields == 0:
            raise ValueError(f"{field.name}: Parquet cannot hold a struct without fields")


def stream_table(table: pa.Table, fmt: Format) -> Iterator[bytes]:
    if fmt == "json":
        yield from _json(table)
        return
    sink = _Sink()
    out = pa.PythonFile(sink, mode="w")
    writer = (
        pq.ParquetWriter(out, table.schema)
        if fmt == "parquet"
        else pacsv.CSVWriter(out, table.schema)
    )
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        writer.write_batch(batch)
        yield sink.take()
    writer.close()
    yield sink.take()


def _json(table: pa.Table) -> Iterator[bytes]:
    """A JSON array of row objects; timestamps as ISO-8601 UTC."""
    yield b"["
    first = True
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        rows = batch.to_pylist()
        if not rows:
            continue
        text = ",".join(dumps(row, default=_default) for row in rows)
        yield (text if first else "," + text).encode()
        first = False
    yield b"]"


def _default(value: Any) -> Any:
    """Timestamps as ISO-8601 UTC; any other value JSON has no type for (dates, decimals,
    durations, bytes of an uploaded Parquet file) as its text."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, bytes):
        return value.decode(errors="backslashreplace")
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
