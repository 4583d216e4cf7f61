"""Reading query results into Arrow on a psycopg connection: `COPY … TO STDOUT (FORMAT csv)`
parsed by Arrow's C++, so no row passes through Python, inside the caller's transaction and
snapshot (the materializer's repeatable-read read of rows and queues). Loads go by binary COPY
from Arrow with ADBC instead (publish.py, pit_candidates.py), as do the point-in-time join's
reads, which need no shared snapshot.

Conventions:
- text is text: PostgreSQL writes NULL as an unquoted empty field and the empty string as
  `""`, and only an unquoted empty field is read as null, so `NA`, `N/A`, `null`, `NULL`, `nan`
  and `#N/A` stay strings;
- timestamps travel as whole microseconds since the epoch (formatting and parsing timestamp
  text costs more than the rest of the row): a query selects `epoch_us(…)` (`select_column`)
  and the column is cast to `timestamp[us, tz=UTC]`; `from_epoch_us` turns such numbers (in
  scratch tables declared with `wire_type`) back into timestamptz in SQL;
- booleans come out as PostgreSQL's `t`/`f`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from jstore.arrow_types import ARROW_TYPES
from jstore.offline.tables import PG_TYPES


def wire_type(dtype: str) -> str:
    """The column type of a scratch table holding a `dtype` column (timestamps: epoch µs)."""
    return "bigint" if dtype == "timestamp" else PG_TYPES[dtype]


def from_epoch_us(expression: sql.Composable) -> sql.Composed:
    """Epoch microseconds (bigint) back to timestamptz, exactly."""
    return sql.SQL("(TIMESTAMPTZ 'epoch' + {} * INTERVAL '1 microsecond')").format(expression)


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
            null_values=[""],
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
