"""The spans a point-in-time join asks of one view kind, and the key code ranges they are cut into.

A *span* is, per key code and checkpoint period asked, the period's start (FIRST) and the last
time asked in it (LAST): the only stored rows an entity row at T can use lie in [C(T), T].
Views of the same join keys and checkpoint period (a *kind*) share their spans.

Memory: the first pass reduces each batch of entity rows to its spans (one numpy sort) and
appends them to a temporary file, 24 bytes a span, so that pass holds one batch; only a count
per key code stays in memory (8 bytes per distinct key tuple, like the key dictionary). After
it, `KeyRanges` cuts the key codes into ranges of about `budget` spans each (one range when
they all fit), and `Spans.table(range)` merges one range's spans from the file.

Invariants: range i holds the codes [starts[i], starts[i + 1]) (the last range has no end);
a row with a null key (code -1) belongs to range 0, where it matches nothing.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from jstore.arrow_types import ARROW_TYPES
from jstore.model import ResolvedView
from jstore.offline.pit_candidates import CODE, FIRST, LAST

if TYPE_CHECKING:
    from jstore.offline.pit_join import KeyDictionary

READ_SPANS = 1 << 20
"""Spans read from the file at a time when a range's are merged."""
_LOW = (1 << 32) - 1


class KeyRanges:
    """Key codes cut into ranges (see the module docstring)."""

    def __init__(self, starts: np.ndarray):
        self.starts = starts

    def __len__(self) -> int:
        return len(self.starts)

    def bounds(self, index: int) -> tuple[int, int]:
        """The codes [start, stop) of range `index`."""
        stop = self.starts[index + 1] if index + 1 < len(self.starts) else np.iinfo(np.int64).max
        return int(self.starts[index]), int(stop)

    def of(self, codes: np.ndarray) -> np.ndarray:
        """Each code's range (a null key's -1: range 0)."""
        return np.searchsorted(self.starts, np.maximum(codes, 0), side="right") - 1


class Spans:
    """The spans of one view kind, collected batch by batch into a temporary file."""

    def __init__(self, view: ResolvedView, dictionary: KeyDictionary):
        self.view = view
        self.dictionary = dictionary
        self.count = 0
        """Spans appended: each batch's distinct ones (the same span in two batches counts
        twice, so this bounds the distinct spans from above)."""
        self._period_us = period_us(view)
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._per_code = np.zeros(0, np.int64)

    def add(self, codes: np.ndarray, times_us: np.ndarray) -> None:
        """The spans of a batch of entity rows (their key codes and times)."""
        keep = codes >= 0  # a row with a null key matches nothing
        times_us = times_us[keep]
        first = checkpoints_us(times_us, self.view)
        code, first, last = last_per_span(codes[keep], first, times_us, self._period_us)
        self._file.write(np.column_stack([code, first, last]).tobytes())
        per_code = np.bincount(code, minlength=len(self._per_code))
        per_code[: len(self._per_code)] += self._per_code
        self._per_code = per_code
        self.count += len(code)

    def ranges(self, budget: int) -> KeyRanges:
        """The key codes cut into ranges of about `budget` spans each (a code's spans are never
        split, so a range may hold more when one key alone does)."""
        ranges = max(1, math.ceil(self.count / budget))
        total = np.cumsum(self._per_code)
        cuts = np.searchsorted(total, self.count * np.arange(1, ranges) / ranges) + 1
        starts = np.unique(np.r_[0, cuts[cuts < len(self._per_code)]])
        return KeyRanges(starts.astype(np.int64))

    def tables(self, ranges: KeyRanges) -> Iterator[pa.Table]:
        """`table` of each range in turn."""
        for index in range(len(ranges)):
            yield self.table(ranges, index)

    def table(self, ranges: KeyRanges, index: int) -> pa.Table:
        """CODE, the join keys, FIRST and LAST (timestamps): one row per span of range `index`."""
        start, stop = ranges.bounds(index)
        parts = []
        self._file.seek(0)
        while chunk := self._file.read(24 * READ_SPANS):
            spans = np.frombuffer(chunk, np.int64).reshape(-1, 3)
            parts.append(spans[(spans[:, 0] >= start) & (spans[:, 0] < stop)])
        spans = np.concatenate(parts) if parts else np.empty((0, 3), np.int64)
        code, first, last = last_per_span(spans[:, 0], spans[:, 1], spans[:, 2], self._period_us)
        timestamp = ARROW_TYPES["timestamp"]
        keys = self.dictionary.keys(code)
        return pa.table(
            {CODE: code}
            | dict(zip(self.view.join_keys, keys, strict=True))
            | {FIRST: pa.array(first).cast(timestamp), LAST: pa.array(last).cast(timestamp)}
        )

    def close(self) -> None:
        self._file.close()


def last_per_span(
    code: np.ndarray, first: np.ndarray, last: np.ndarray, period_us: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per (code, first), with its latest `last` (`first`: multiples of `period_us`).

    (code, period number) packs into one int64, so one sort groups the rows."""
    packed = (code << 32) | ((first // period_us + (1 << 31)) & _LOW)
    order = np.argsort(packed)
    packed = packed[order]
    start = np.flatnonzero(np.r_[True, packed[1:] != packed[:-1]])
    latest = np.maximum.reduceat(last[order], start) if len(start) else last[:0]
    return code[order[start]], first[order[start]], latest


def checkpoints_us(times_us: np.ndarray, view: ResolvedView) -> np.ndarray:
    """Each time's checkpoint C(T), in microseconds since the epoch."""
    return times_us - np.mod(times_us, period_us(view))


def period_us(view: ResolvedView) -> int:
    return int(view.definition.checkpoint_period.total_seconds()) * 1_000_000
