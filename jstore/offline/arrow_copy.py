"""Moving Arrow data in and out of PostgreSQL with COPY, in CSV encoded and parsed by Arrow's C++.

CSV keeps every row out of Python: Arrow writes the batches, PostgreSQL parses them, and on the
way out Arrow parses what `COPY … TO STDOUT` sends (or, for rows of fixed-width columns only,
numpy reads a binary COPY as it comes: `copy_out_fixed`). Conventions on both sides:
- strings are always quoted, so an unquoted empty field is NULL and `""` is the empty string;
- timestamps travel as whole microseconds since the epoch both ways (formatting and parsing
  timestamp text costs more than the rest of the row): `copy_in` sends them as bigint into a
  column declared with `wire_type`, SQL turns them back with `from_epoch_us`, and `copy_out`
  receives `epoch_us(…)` and casts to `timestamp[us, tz=UTC]`;
- booleans come out as PostgreSQL's `t`/`f`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from jstore.arrow_types import ARROW_TYPES
from jstore.offline.tables import PG_TYPES

FIXED_WIDTH = {"int64": ">i8", "float64": ">f8", "bool": "u1", "timestamp": ">i8"}
POSTGRES_EPOCH_US = 946_684_800_000_000  # binary timestamptz counts µs from 2000-01-01
BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_WRITE = pacsv.WriteOptions(include_header=False, quoting_style="needed")


def wire_type(dtype: str) -> str:
    """The column type of a temporary table that `copy_in` fills (timestamps: epoch µs)."""
    return "bigint" if dtype == "timestamp" else PG_TYPES[dtype]


def from_epoch_us(expression: sql.Composable) -> sql.Composed:
    """Epoch microseconds (bigint) back to timestamptz, exactly."""
    return sql.SQL("(TIMESTAMPTZ 'epoch' + {} * INTERVAL '1 microsecond')").format(expression)


def copy_in(
    conn: psycopg.Connection,
    table: sql.Composable,
    columns: list[str],
    batches: Iterable[pa.RecordBatch],
) -> int:
    """COPY `batches` (holding exactly `columns`, in order) into `table`; returns rows.

    Timestamp columns are sent as epoch microseconds: declare them with `wire_type`.
    """
    rows = 0
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        table, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor().copy(statement) as copy:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            buffer = io.BytesIO()
            pacsv.write_csv(_timestamps_as_int(batch), buffer, _WRITE)
            copy.write(buffer.getbuffer())
            rows += batch.num_rows
    return rows


def _timestamps_as_int(batch: pa.RecordBatch) -> pa.RecordBatch:
    arrays = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def epoch_us(expression: sql.Composable) -> sql.Composed:
    """A timestamptz expression as whole microseconds since the epoch (exact: numeric math)."""
    return sql.SQL("(extract(epoch FROM {}) * 1000000)::bigint").format(expression)


def select_column(expression: sql.Composable, dtype: str) -> sql.Composable:
    """How a column of `dtype` is selected for `copy_out`."""
    return epoch_us(expression) if dtype == "timestamp" else expression


def copy_out(conn: psycopg.Connection, query: sql.Composable, dtypes: dict[str, str]) -> pa.Table:
    """Run `query` (its columns selected with `select_column`) and return it as an Arrow table."""
    with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)) as copy:
        data = b"".join(bytes(chunk) for chunk in copy)
    if not data:
        return _empty(dtypes)
    table = pacsv.read_csv(pa.py_buffer(data), *_read_options(dtypes, use_threads=True))
    return _restore_timestamps(table, dtypes)


def copy_out_fixed(
    conn: psycopg.Connection, query: sql.Composable, layout: list[tuple[str, str]]
) -> np.ndarray:
    """Run `query` by binary COPY and return its rows as a numpy record array.

    Every column must be non-null and of a fixed width: `layout` names them in order with their
    big-endian numpy dtype (FIXED_WIDTH; timestamptz is µs since POSTGRES_EPOCH_US).
    """
    with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)) as copy:
        data = b"".join(bytes(chunk) for chunk in copy)
    fields = [("count", ">i2")]
    for name, dtype in layout:
        fields += [(f"{name}_length", ">i4"), (name, dtype)]
    row = np.dtype(fields)
    header = len(BINARY_SIGNATURE) + 4
    extension = int.from_bytes(data[header : header + 4], "big") if data else 0
    body = memoryview(data)[header + 4 + extension : -2] if data else memoryview(b"")
    if len(body) % row.itemsize:
        raise ValueError("binary COPY rows are not of the expected fixed layout")
    return np.frombuffer(body, row)


def copy_out_batches(
    conn: psycopg.Connection, query: sql.Composable, dtypes: dict[str, str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Like `copy_out`, streamed: batches of about `batch_rows` rows, never the whole result."""
    with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)) as copy:
        stream = io.BufferedReader(_CopyReader(iter(copy)), buffer_size=1 << 20)
        if not stream.peek(1):
            return
        read, parse, convert = _read_options(dtypes, use_threads=False)
        read.block_size = max(batch_rows * 64, 1 << 16)
        reader = pacsv.open_csv(
            stream, read_options=read, parse_options=parse, convert_options=convert
        )
        for batch in reader:
            yield _restore_timestamps(pa.Table.from_batches([batch]), dtypes).to_batches()[0]


def _read_options(
    dtypes: dict[str, str], use_threads: bool
) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    wire = {name: pa.int64() if d == "timestamp" else ARROW_TYPES[d] for name, d in dtypes.items()}
    return (
        pacsv.ReadOptions(column_names=list(dtypes), use_threads=use_threads),
        pacsv.ParseOptions(newlines_in_values=True),
        pacsv.ConvertOptions(
            column_types=wire,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )


def _restore_timestamps(table: pa.Table, dtypes: dict[str, str]) -> pa.Table:
    for name, dtype in dtypes.items():
        if dtype == "timestamp":
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, table[name].cast(ARROW_TYPES["timestamp"]))
    return table


def _empty(dtypes: dict[str, str]) -> pa.Table:
    return pa.schema([(n, ARROW_TYPES[d]) for n, d in dtypes.items()]).empty_table()


class _CopyReader(io.RawIOBase):
    """A file over the chunks of a `COPY … TO STDOUT`, for Arrow's streaming CSV reader."""

    def __init__(self, chunks: Iterator[memoryview]):
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = bytes(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
