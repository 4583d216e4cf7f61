"""The spans a point-in-time join asks of one view kind, and the key code ranges they are cut into.

A *span* is, per key code and checkpoint period asked, the period's start (FIRST) and the last
time asked in it (LAST): the only stored rows an entity row at T can use lie in [C(T), T].
Views of the same join keys and checkpoint period (a *kind*) share their spans.

Memory: the first pass reduces each batch of entity rows to its spans (one numpy sort), merged
in memory while they fit a budget of spans (24 bytes each); past it they go to a temporary
file, each batch's as they come, and only a count per key code stays in memory (8 bytes per
distinct key tuple, like the key dictionary). After it, `KeyRanges` cuts the key codes into
ranges of about `budget` spans each (one range when they fit it), and `Spans.tables` splits the
file by range in one pass, then merges each range's spans into span table rows (`span_rows`: a
row per key and run of periods, what PostgreSQL is sent).

Invariants: range i holds the codes [starts[i], starts[i + 1]) (the last range has no end);
a row with a null key (code -1) belongs to range 0, where it matches nothing.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from typing import IO

import numpy as np
import pyarrow as pa

from jstore.arrow_types import ARROW_TYPES
from jstore.model import ResolvedView
from jstore.offline.pit_candidates import CHUNK, CHUNK_PERIODS, CODE, FIRST, LAST, LASTS
from jstore.offline.pit_keys import KeyDictionary, pack_pair

READ_SPANS = 1 << 20
"""Spans read from the file at a time when a range's are merged."""


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
    """The spans of one view kind, collected batch by batch: merged in memory while they fit
    `budget`, appended to a temporary file past it."""

    def __init__(self, view: ResolvedView, dictionary: KeyDictionary, budget: int):
        self.view = view
        self.dictionary = dictionary
        self.budget = budget
        self.count = 0
        """The spans held: exact while in memory; in the file each batch's distinct ones (the
        same span in two batches counts twice, so this bounds the distinct spans above)."""
        self._period_us = period_us(view)
        self._parts: list[np.ndarray] = []
        """In memory: (code, first, last) rows, the first part merged."""
        self._file: IO[bytes] | None = None
        self._per_code = np.zeros(0, np.int64)
        """Spans in the file per key code."""
        self.origin_us: int | None = None
        """The start of the earliest period asked (None before any): span table chunks are
        counted from it, so that spans within CHUNK_PERIODS of it make one chunk."""

    def add(self, codes: np.ndarray, times_us: np.ndarray) -> None:
        """The spans of a batch of entity rows (their key codes and times)."""
        keep = codes >= 0  # a row with a null key matches nothing
        times_us = times_us[keep]
        first = checkpoints_us(times_us, self.view)
        if len(first):
            low = int(first.min())
            self.origin_us = low if self.origin_us is None else min(self.origin_us, low)
        spans = np.column_stack(last_per_span(codes[keep], first, times_us, self._period_us))
        if self._file is not None:
            self._spill(spans)
            return
        self._parts.append(spans)
        self.count += len(spans)
        if self.count > self.budget:
            self._merge()

    def _merge(self) -> None:
        """The spans in memory merged; written to the file when they exceed the budget."""
        spans = np.concatenate(self._parts) if self._parts else np.empty((0, 3), np.int64)
        merged = np.column_stack(last_per_span(*spans.T, self._period_us))
        self._parts, self.count = [merged], len(merged)
        if len(merged) > self.budget:
            self._parts, self.count = [], 0
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            self._spill(merged)

    def _spill(self, spans: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(spans).tobytes())
        per_code = np.bincount(spans[:, 0], minlength=len(self._per_code))
        per_code[: len(self._per_code)] += self._per_code
        self._per_code = per_code
        self.count += len(spans)

    def ranges(self) -> KeyRanges:
        """The key codes cut into ranges of about `budget` spans each (a code's spans are never
        split, so a range may hold more when one key alone does); one range when the spans fit
        the budget."""
        if self._file is None:
            self._merge()
        if self._file is None:
            return KeyRanges(np.zeros(1, np.int64))
        ranges = max(1, math.ceil(self.count / self.budget))
        total = np.cumsum(self._per_code)
        cuts = np.searchsorted(total, self.count * np.arange(1, ranges) / ranges) + 1
        starts = np.unique(np.r_[0, cuts[cuts < len(self._per_code)]])
        return KeyRanges(starts.astype(np.int64))

    def lookup(self) -> SpanLookup:
        """The spans as a `SpanLookup`, when they are one range (held in memory: `ranges` has
        merged them)."""
        if self._file is not None or len(self._parts) != 1:
            raise ValueError("the spans are not one range merged in memory")
        return SpanLookup(self.view, *self._parts[0].T)

    def tables(self, ranges: KeyRanges) -> Iterator[pa.Table]:
        """`table` of each range in turn. Spans in the file are read once, split into a
        temporary file per range, then each range's merged: reading the whole file for each
        range would read it as many times as there are ranges, which grow with it."""
        if self._file is None:
            if len(ranges) == 1 and len(self._parts) == 1:  # merged already, as `add` merges
                yield span_rows(self.view, self.dictionary, *self._parts[0].T, self.origin_us)
                return
            for index in range(len(ranges)):
                yield self.table(ranges, index)
            return
        with ExitStack() as files:
            per_range = [files.enter_context(tempfile.TemporaryFile()) for _ in range(len(ranges))]
            for spans in self._read():
                of_range = ranges.of(spans[:, 0])
                order = np.argsort(of_range, kind="stable")
                ends = np.cumsum(np.bincount(of_range, minlength=len(ranges)))
                for file, start, end in zip(per_range, np.r_[0, ends[:-1]], ends, strict=True):
                    file.write(np.ascontiguousarray(spans[order[start:end]]).tobytes())
            for file in per_range:
                file.seek(0)
                yield self._as_table(np.frombuffer(file.read(), np.int64).reshape(-1, 3))

    def table(self, ranges: KeyRanges, index: int) -> pa.Table:
        """The span table rows of range `index` (`span_rows`)."""
        start, stop = ranges.bounds(index)
        parts = [spans[(spans[:, 0] >= start) & (spans[:, 0] < stop)] for spans in self._read()]
        return self._as_table(np.concatenate(parts) if parts else np.empty((0, 3), np.int64))

    def _as_table(self, spans: np.ndarray) -> pa.Table:
        """(code, first, last) rows, the same span possibly several times, as span table rows
        (`span_rows`)."""
        code, first, last = last_per_span(*spans.T, self._period_us)
        return span_rows(self.view, self.dictionary, code, first, last, self.origin_us)

    def _read(self) -> Iterator[np.ndarray]:
        """The spans held, in parts of (code, first, last) rows."""
        yield from self._parts
        if self._file is not None:
            self._file.seek(0)
            while chunk := self._file.read(24 * READ_SPANS):
                yield np.frombuffer(chunk, np.int64).reshape(-1, 3)

    def close(self) -> None:
        self._parts = []
        if self._file is not None:
            self._file.close()


def last_per_span(
    code: np.ndarray, first: np.ndarray, last: np.ndarray, period_us: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per (code, first), with its latest `last` (`first`: multiples of `period_us`).

    (code, period number) packs into one int64, so one sort groups the rows."""
    if not len(code):
        return code, first, last
    packed = pack_pair(code, first // period_us + (1 << 31))
    order = np.argsort(packed)
    packed = packed[order]
    start = np.flatnonzero(np.r_[True, packed[1:] != packed[:-1]])
    latest = np.maximum.reduceat(last[order], start)
    return code[order[start]], first[order[start]], latest


GAP_PERIODS = 8
"""A key's periods asked further apart than this start a new span table row, so that a row's
LASTS holds at most this many filler values per span."""


def span_rows(
    view: ResolvedView,
    dictionary: KeyDictionary,
    code: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    origin_us: int | None,
) -> pa.Table:
    """Spans (one per code and period, sorted by both; `first` the period's start, `last` the
    last time asked in it) as span table rows: per key code, each run of its periods asked
    within one CHUNK (CHUNK_PERIODS periods from `origin_us`, a period's start at or before
    every `first`, or the epoch for None; the start of the run's chunk) and
    at most GAP_PERIODS apart is one row of CODE, the join keys, CHUNK, FIRST (the run's
    first period's start), LAST (the run's last time asked) and LASTS, per period from FIRST's
    on, the last time asked in it, or the period's start less 1 µs when none is (a time no
    stored row of that period is at or before).

    The server matches a stored row at `feature_ts` to the row of its key and chunk whose
    [FIRST, LAST] holds it, and keeps it when `feature_ts` <= LASTS[its period's]: a hash of
    (keys, chunk) with one entry per run instead of one per span (pit_candidates.py)."""
    timestamp = ARROW_TYPES["timestamp"]
    step = period_us(view)
    origin = (origin_us or 0) // step
    period = first // step
    chunk = (period - origin) // CHUNK_PERIODS
    new_row = np.ones(len(code), bool)
    new_row[1:] = (code[1:] != code[:-1]) | (chunk[1:] != chunk[:-1])
    new_row[1:] |= np.diff(period) > GAP_PERIODS
    head = np.flatnonzero(new_row)
    row_of_span = np.cumsum(new_row) - 1
    tail = np.r_[head[1:], len(code)].astype(np.int64) - 1
    lengths = period[tail] - period[head] + 1 if len(head) else np.zeros(0, np.int64)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    slot = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    lasts = (np.repeat(period[head], lengths) + slot) * step - 1
    lasts[offsets[row_of_span] + period - period[head][row_of_span]] = last
    latest = np.maximum.reduceat(last, head) if len(head) else last
    keys = dictionary.keys(code[head])
    return pa.table(
        {CODE: code[head]}
        | dict(zip(view.join_keys, keys, strict=True))
        | {
            CHUNK: pa.array((origin + chunk[head] * CHUNK_PERIODS) * step).cast(timestamp),
            FIRST: pa.array(first[head]).cast(timestamp),
            LAST: pa.array(latest).cast(timestamp),
            LASTS: pa.ListArray.from_arrays(
                pa.array(offsets, pa.int32()), pa.array(lasts).cast(timestamp)
            ),
        }
    )


class SpanLookup:
    """The spans of one range, to keep the stored rows the server's span-table join keeps
    (pit_candidates.py): a row whose key code and period were asked, at or before the last time
    asked in that period."""

    def __init__(self, view: ResolvedView, code: np.ndarray, first: np.ndarray, last: np.ndarray):
        """`code`, `first`, `last`: one span per code and period, sorted by both (as
        `last_per_span` gives them)."""
        self.view = view
        self._keys = pack_pair(code, first // period_us(view) + (1 << 31))
        self._lasts = last
        ends = pa.array([first.min(), last.max()] if len(code) else [], pa.int64())
        self.bounds = tuple(ends.cast(ARROW_TYPES["timestamp"]).to_pylist()) or None
        """The earliest period start and the latest time asked (None without spans)."""

    def __len__(self) -> int:
        """The spans."""
        return len(self._keys)

    def asked(self, code: np.ndarray, times_us: np.ndarray) -> np.ndarray:
        """Whether each stored row (its key code, -1 for a key no entity row has, and time) is
        one the spans ask for."""
        if not len(self._keys):
            return np.zeros(len(code), bool)
        period = checkpoints_us(times_us, self.view) // period_us(self.view)
        wanted = pack_pair(np.maximum(code, 0), period + (1 << 31))
        at = np.minimum(np.searchsorted(self._keys, wanted), len(self._keys) - 1)
        return (code >= 0) & (self._keys[at] == wanted) & (times_us <= self._lasts[at])


def checkpoints_us(times_us: np.ndarray, view: ResolvedView) -> np.ndarray:
    """Each time's checkpoint C(T), in microseconds since the epoch."""
    return times_us - np.mod(times_us, period_us(view))


def period_us(view: ResolvedView) -> int:
    return int(view.definition.checkpoint_period.total_seconds()) * 1_000_000
