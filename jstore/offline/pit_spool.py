"""Temporary files of a point-in-time join: what it keeps between passes instead of in memory.

- `RowCodes`: each entity row's key codes (per join key tuple) and time, from the first pass
  to the later ones, 12 bytes a row and key tuple; read back by any number of readers, each in
  entity-row order.
- `RangeSpools`: rows that belong to key code ranges (pit_spans.py), one Arrow IPC file per
  range. Written batch by batch, each batch split by range; read back range by range (`read`,
  or `batches` a batch at a time) or, for rows written in entity-row order, merged back into
  entity-row order (`take`: a batch's rows know their ranges, so each range gives its next
  rows, no sort of the files).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from jstore.offline.pit_spans import KeyRanges

KeyCodes = dict[tuple[str, ...], np.ndarray]
"""Per join key tuple, each row's key code."""


class RowCodes:
    """Each entity row's key codes and time (microseconds), in temporary files."""

    def __init__(self) -> None:
        self._files: dict[tuple[str, ...] | None, tempfile._TemporaryFileWrapper] = {}
        self.rows = 0

    def append(self, codes: KeyCodes, times_us: np.ndarray) -> None:
        for names, data in [*codes.items(), (None, times_us)]:
            if names not in self._files:
                self._files[names] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            dtype = np.int64 if names is None else np.int32
            self._files[names].write(data.astype(dtype).tobytes())
        self.rows += len(times_us)

    def reader(self) -> Callable[[int], tuple[KeyCodes, np.ndarray]]:
        """A function giving the next `n` rows' codes per key tuple and times, from the first
        row on (each reader keeps its own place)."""
        for file in self._files.values():
            file.flush()
        read_rows = 0

        def read(n: int) -> tuple[KeyCodes, np.ndarray]:
            nonlocal read_rows
            codes: KeyCodes = {}
            times_us = np.empty(0, np.int64)
            for names, file in self._files.items():
                width = 8 if names is None else 4
                data = os.pread(file.fileno(), width * n, width * read_rows)
                if len(data) != width * n:
                    raise RuntimeError("the entity rows changed between the join's passes")
                if names is None:
                    times_us = np.frombuffer(data, np.int64)
                else:
                    codes[names] = np.frombuffer(data, np.int32).astype(np.int64)
            read_rows += n
            return codes, times_us

        return read

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files = {}


class RangeSpools:
    """Rows of one schema split by key code range, one temporary Arrow IPC file per range."""

    def __init__(self, ranges: KeyRanges, schema: pa.Schema, folder: str):
        self.ranges = ranges
        self.schema = schema
        self._paths = [os.path.join(folder, f"{id(self)}-{i}.arrow") for i in range(len(ranges))]
        self._writers = [pa.ipc.new_stream(path, schema) for path in self._paths]
        self._readers: list[_SpoolReader] = []

    def write(self, batch: pa.RecordBatch, range_of_row: np.ndarray) -> None:
        """Append each row of `batch` to its range's file (`range_of_row`: each row's range)."""
        order = np.argsort(range_of_row, kind="stable")
        ends = np.cumsum(np.bincount(range_of_row, minlength=len(self.ranges)))
        grouped = batch.take(pa.array(order))
        for index, end in enumerate(ends):
            start = ends[index - 1] if index else 0
            if end > start:
                self.append(index, grouped.slice(start, end - start))

    def append(self, index: int, batch: pa.RecordBatch) -> None:
        """Append rows of range `index` to its file."""
        self._writers[index].write_batch(batch)

    def finish(self) -> None:
        """Close the files for writing (before `read` or `take`)."""
        for writer in self._writers:
            writer.close()
        self._writers = []

    def read(self, index: int) -> pa.Table:
        """Every row of range `index`, in the order written."""
        with pa.OSFile(self._paths[index]) as source:
            return pa.ipc.open_stream(source).read_all()

    def batches(self, index: int) -> Iterator[pa.RecordBatch]:
        """The rows of range `index` in the order written, a batch written at a time."""
        with pa.OSFile(self._paths[index]) as source:
            yield from pa.ipc.open_stream(source)

    def take(self, range_of_row: np.ndarray) -> pa.RecordBatch:
        """The next rows of each range, in the order of `range_of_row` (each row's range)."""
        if not self._readers:
            self._readers = [_SpoolReader(path, self.schema) for path in self._paths]
        counts = np.bincount(range_of_row, minlength=len(self.ranges))
        pieces = [reader.next(int(n)) for reader, n in zip(self._readers, counts, strict=True)]
        grouped = pa.Table.from_batches([p for piece in pieces for p in piece], self.schema)
        order = np.argsort(range_of_row, kind="stable")
        position = np.empty(len(order), np.int64)
        position[order] = np.arange(len(order))
        taken = grouped.take(pa.array(position))
        return pa.RecordBatch.from_arrays(
            [column.combine_chunks() for column in taken.columns], schema=self.schema
        )

    def remove(self) -> None:
        for writer in self._writers:
            writer.close()
        for reader in self._readers:
            reader.close()
        for path in self._paths:
            if os.path.exists(path):
                os.remove(path)


class _SpoolReader:
    """An IPC stream file read `n` rows at a time."""

    def __init__(self, path: str, schema: pa.Schema):
        self._source = pa.OSFile(path)
        self._stream = pa.ipc.open_stream(self._source)
        self._schema = schema
        self._left: pa.RecordBatch | None = None

    def next(self, n: int) -> list[pa.RecordBatch]:
        batches: list[pa.RecordBatch] = []
        while n > 0:
            if self._left is None or self._left.num_rows == 0:
                try:
                    self._left = self._stream.read_next_batch()
                except StopIteration:
                    raise RuntimeError("a join's range file ended early") from None
            part = self._left.slice(0, n)
            self._left = self._left.slice(part.num_rows)
            batches.append(part)
            n -= part.num_rows
        return batches

    def close(self) -> None:
        self._source.close()
