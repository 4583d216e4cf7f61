"""The point-in-time join: each entity row gets, per view, the latest row at or before its time.

For an entity row (join keys, `event_timestamp` T, any other columns) and a view V:
- Let C(T) be T's checkpoint, T floored to the view's `checkpoint_period` (every non-empty
  entity has a row at a checkpoint, changed or not).
- [C(T), T] inside V's published coverage (one merged interval [s, e) with s <= C(T) and
  T < e): the features of V's latest row with `C(T) <= feature_ts <= T` (a row stamped exactly
  T counts: it aggregates only events before T), or, when the entity has no such row, the
  empty-window values (`FeatureSpec.empty_value`: 0 for count, count_distinct and sum, else
  null). DESIGN.md "Absent means empty".
- Otherwise: null for every feature of V, whatever is stored, because the value at T cannot be
  known from what was computed. These rows are counted per view and returned beside the rows
  (`JoinResult.uncovered_rows`, `PointInTimeJoin.uncovered_rows`), never written into them.

Every entity row is kept, in order, its columns unchanged; the features are appended as
`<view>__<feature>`.

How (`PointInTimeJoin`), in two passes over the entity rows, batch by batch, so that memory
holds a fixed number of batches of entity rows, not all of them:
1. `prepare` reads only the join keys and `event_timestamp`: each row's key tuple gets an
   integer code from a growing `KeyDictionary` (the codes and times go to temporary files,
   `RowCodes`, for the later passes), and per view kind (join keys and checkpoint period) the
   *spans* asked are collected (pit_spans.py: per key code and checkpoint period, the period's
   start and the last time asked in it). The stored rows inside the spans are read from the
   view's published files (pit_files.py: the staged runs' Parquet, when the spans are one key
   range and published_files.py finds every run in place) or else fetched from PostgreSQL
   (pit_candidates.py: the spans loaded once per kind, a connection per view, in parallel);
   they are sorted by (key code, feature_ts) into an `AsOfIndex`, which ends with two extra
   rows: the empty-window values and nulls.
2. `batches`: per batch of entity rows, each row's key code (read back) and one binary search
   find its row, or one of the two extra rows (no row in [C(T), T]; not covered); one `take`
   per view appends its features, and the batch is yielded.
A kind with more than RANGE_SPANS spans is cut into key code ranges of about that many
(`KeyRanges`), so that memory holds one range's spans and candidate rows, whatever the number
of entity rows: its spans go to PostgreSQL range by range into the same table, each view's
rows are still fetched by one query, streamed into one temporary file per range as they
arrive (`RangeSpools`); then per range, its `AsOfIndex` is built and the features of that
range's entity rows (codes and times read back) are spooled, in entity-row order; `batches`
merges them back (each row knows its range, so each range's file gives its next rows).
One LATERAL … ORDER BY feature_ts DESC LIMIT 1 seek per entity row measured slower: its server
output per entity row costs more than the candidate rows (figures in docs/offline_store.md).
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from jstore import phases
from jstore.arrow_types import ARROW_TYPES
from jstore.config import Settings
from jstore.errors import InputError
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.pit_candidates import CODE, SpanTable, SpanTables
from jstore.offline.pit_files import candidate_schema, file_candidates
from jstore.offline.pit_keys import KeyDictionary, pack_pair
from jstore.offline.pit_spans import KeyRanges, SpanLookup, Spans, checkpoints_us
from jstore.offline.pit_spool import KeyCodes, RangeSpools, RowCodes
from jstore.offline.published_files import FileRange, file_ranges

EVENT_TIMESTAMP = "event_timestamp"
MAX_CONNECTIONS = 4
JOIN_THREADS = 2
BATCH_ROWS = 65_536
FIRST_PASS_ROWS = 262_144
"""Entity rows read at a time by the first pass, which reads only the join keys and times: each
batch's key values are looked up in the key dictionary, whose hash Arrow builds again per
batch, so bigger batches cost less (measured at 1M entity rows: 0.52 s against 0.64 s in
batches of BATCH_ROWS), while they hold a few MB."""
RANGE_SPANS = 1_000_000
"""The most spans of a view kind joined at once: more are cut into key code ranges joined one
after the other (see the module docstring), so memory holds about this many spans and their
candidate rows, whatever the number of entity rows. 1M entity rows over 100,000 keys and 30
days ask 860,000 spans: within one range (measured: peak 461-554 MB resident; cut into two
ranges of 500,000, 441-465 MB and 0.4 CPU seconds more in spooling the ranges). At 2M entity rows,
two ranges: peak 603 MB (409-436 MB with a budget of 500,000)."""
FILE_ROWS_PER_SPAN = 32
"""A view's published files are read when their runs hold at most this many rows per span
asked, else its rows are fetched from PostgreSQL: reading the files costs per row they hold,
the server's plan per span when the spans are few (it then seeks them). Measured with
bench_export.py over 2.9M stored rows: 98,450 spans (100,000 entity rows) took 1.04 s from the
files and 1.10 s from PostgreSQL, 10,000 spans 0.60 s and 0.49 s, 860,000 spans 2.46-2.69 s
and 3.46-3.96 s."""
Coverage = dict[str, list[tuple[datetime, datetime]]]
EntityBatches = Callable[[list[str] | None, int], Iterable[pa.RecordBatch]]
"""Called once per pass: the entity rows, in order, in batches of at most the rows given, with
only the columns named (all of them for None)."""


@dataclass(frozen=True)
class JoinResult:
    """A joined table and, per view table, its entity rows past the published coverage."""

    table: pa.Table
    uncovered_rows: dict[str, int]
    """Entity rows whose features of that view are null: their time is not covered."""


@dataclass
class _ViewPart:
    """One view version of a join and the features asked of it."""

    view: ResolvedView
    features: list[FeatureSpec] = field(default_factory=list)

    def column(self, feature: FeatureSpec) -> str:
        return output_column(self.view, feature)


def output_column(view: ResolvedView, feature: FeatureSpec) -> str:
    """The training-set column of a feature: `<view>__<feature>`."""
    return f"{view.name}__{feature.name}"


def point_in_time_join(
    dsn: str,
    schema: str,
    entity_rows: pa.Table,
    features: Sequence[tuple[ResolvedView, FeatureSpec]],
    coverage: Coverage,
    lake: Settings | None = None,
) -> JoinResult:
    """The entity rows with one column per requested feature (see the module docstring)."""
    join = PointInTimeJoin(dsn, schema, features, coverage, lake)

    def batches(columns: list[str] | None, rows: int) -> list[pa.RecordBatch]:
        selected = entity_rows if columns is None else entity_rows.select(columns)
        return selected.to_batches(max_chunksize=rows)

    join.prepare(batches, entity_rows.schema)
    joined = pa.Table.from_batches(list(join.batches(batches)), join.output_schema)
    return JoinResult(joined, join.uncovered_rows)


class PointInTimeJoin:
    """The join of a stream of entity rows with the features (passes: see the module)."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        features: Sequence[tuple[ResolvedView, FeatureSpec]],
        coverage: Coverage,
        lake: Settings | None = None,
    ):
        self.dsn = dsn
        self.schema = schema
        self.lake = lake
        """The settings of the lake whose staged runs the published files are (None: every
        view's candidate rows come from PostgreSQL)."""
        self.features = list(features)
        self.coverage = coverage
        self.parts: list[_ViewPart] = []
        self.keys: dict[str, str] = {}
        self.uncovered_rows: dict[str, int] = {}
        """Per view table, the entity rows past its published coverage (set by `prepare`)."""
        self.output_schema = pa.schema([])
        self.ranges: dict[str, KeyRanges] = {}
        """Per joined view table, the key code ranges its kind was cut into (set by `prepare`:
        one range when its spans fit RANGE_SPANS)."""
        self._indexes: dict[str, AsOfIndex] = {}
        """The views joined from memory: a view of one range, or never published."""
        self._spooled: dict[str, RangeSpools] = {}
        """The views joined range by range: their features per entity row, per range."""
        self._row_codes = RowCodes()
        self._folder: tempfile.TemporaryDirectory | None = None

    def prepare(self, entity_batches: EntityBatches, entity_schema: pa.Schema) -> None:
        """Pass 1: check the entity rows, collect the spans, fetch the candidate rows (and join
        the views of several ranges, range by range)."""
        try:
            self._prepare(entity_batches, entity_schema)
        except BaseException:
            self._close()
            raise

    def _prepare(self, entity_batches: EntityBatches, entity_schema: pa.Schema) -> None:
        self.parts = _group_by_view(self.features, entity_schema.names)
        self.keys = _key_dtypes(self.parts, entity_schema.names)
        if EVENT_TIMESTAMP not in entity_schema.names:
            raise InputError(f"{EVENT_TIMESTAMP}: missing column in the entity rows")
        added = {}
        for view, spec in self.features:
            added.setdefault(output_column(view, spec), ARROW_TYPES[spec.dtype])
        self.output_schema = pa.schema(
            [*entity_schema, *(pa.field(name, t) for name, t in added.items())],
            metadata=entity_schema.metadata,
        )
        with psycopg.connect(self.dsn) as conn:
            existing = _existing_tables(conn, self.schema, self.parts)
        joined = [part for part in self.parts if part.view.table in existing]
        # Views of the same join keys share a dictionary of the key tuples seen, and views of
        # the same keys and checkpoint period share their spans.
        dictionaries: dict[tuple[str, ...], KeyDictionary] = {}
        spans: dict[tuple, Spans] = {}
        for part in joined:
            keys = tuple(part.view.join_keys)
            if keys not in dictionaries:
                dtypes = [ARROW_TYPES[self.keys[k]] for k in keys]
                dictionaries[keys] = KeyDictionary(dtypes)
            spans.setdefault(
                _span_kind(part.view), Spans(part.view, dictionaries[keys], RANGE_SPANS)
            )
        self.uncovered_rows = {part.view.table: 0 for part in self.parts}

        def record(codes: KeyCodes, times_us: np.ndarray) -> None:
            self._row_codes.append(codes, times_us)
            for collected in spans.values():
                collected.add(codes[tuple(collected.view.join_keys)], times_us)

        offset = 0
        try:
            # A batch's codes are recorded (spooled, reduced to spans) on a second thread while
            # the next batch is read and coded: numpy and Arrow release the GIL.
            with phases.timed("first pass"), ThreadPoolExecutor(1) as recording:
                recorded: Future | None = None
                for batch in entity_batches([*self.keys, EVENT_TIMESTAMP], FIRST_PASS_ROWS):
                    times = normalized_timestamps(batch, offset)
                    times_us = times.cast(pa.int64()).to_numpy()
                    keys = {k: _cast_key(batch, k, dtype) for k, dtype in self.keys.items()}
                    check_key_text(keys, offset)
                    for part in self.parts:
                        coverage = self.coverage.get(part.view.table, [])
                        covered = _covered(times_us, coverage, part.view)
                        self.uncovered_rows[part.view.table] += len(covered) - int(np.sum(covered))
                    codes = {n: d.encode([keys[k] for k in n]) for n, d in dictionaries.items()}
                    if recorded is not None:
                        recorded.result()
                    recorded = recording.submit(record, codes, times_us)
                    offset += batch.num_rows
                if recorded is not None:
                    recorded.result()
                ranges = {kind: collected.ranges() for kind, collected in spans.items()}
                self.ranges = {part.view.table: ranges[_span_kind(part.view)] for part in joined}
            if joined:
                with phases.timed("candidate rows"):
                    self._fetch(joined, spans, ranges)
        finally:
            for collected in spans.values():
                collected.close()
        for part in self.parts:  # a view never published: nothing stored
            if part.view.table not in self._spooled:
                self._indexes.setdefault(part.view.table, AsOfIndex(None, None, part.features))

    def _fetch(
        self, joined: list[_ViewPart], spans: dict[tuple, Spans], ranges: dict[tuple, KeyRanges]
    ) -> None:
        """Each joined view's candidate rows. A view of one key range whose published files
        can be read reads them (pit_files.py). The other views' spans are loaded once per kind
        into a span table, each view's query started as soon as its spans are in, on a
        connection of its own, all in parallel. Each view is joined as soon as its rows are in:
        a view of one range gets its `AsOfIndex`; a view of several is joined range by range
        (`_join_by_ranges`)."""
        if any(len(kind_ranges) > 1 for kind_ranges in ranges.values()):
            self._folder = tempfile.TemporaryDirectory(prefix="jstore-join-")
        with (
            SpanTables(self.dsn, self.schema) as tables,
            ThreadPoolExecutor(MAX_CONNECTIONS) as pool,
        ):
            joining: dict[Future, _ViewPart] = {}
            loading: dict[Future, list[_ViewPart]] = {}
            for kind, collected in spans.items():
                parts = [part for part in joined if _span_kind(part.view) == kind]
                if len(ranges[kind]) == 1:
                    asked = collected.lookup()
                    files = self._published_files(parts, asked)
                    for part in parts:
                        if part.view.table in files:
                            task = pool.submit(
                                self._index_from_files,
                                part,
                                files[part.view.table],
                                asked,
                                collected.dictionary,
                            )
                            joining[task] = part
                    parts = [part for part in parts if part.view.table not in files]
                if parts:
                    span_rows = collected.tables(ranges[kind])
                    loading[pool.submit(tables.load, collected.view, span_rows)] = parts
            for loaded in as_completed(loading):
                for part in loading[loaded]:
                    kind = _span_kind(part.view)
                    dictionary = spans[kind].dictionary
                    if len(ranges[kind]) == 1:
                        task = pool.submit(self._index, loaded.result(), part, dictionary)
                    else:
                        task = pool.submit(
                            self._join_by_ranges, loaded.result(), part, ranges[kind], dictionary
                        )
                    joining[task] = part
            for joined_view in as_completed(joining):
                table = joining[joined_view].view.table
                if isinstance(result := joined_view.result(), RangeSpools):
                    self._spooled[table] = result
                else:
                    self._indexes[table] = result

    def _published_files(
        self, parts: list[_ViewPart], asked: SpanLookup
    ) -> dict[str, list[FileRange]]:
        """Per view table of `parts` whose published files can be read instead of the table
        (published_files.file_ranges: a files table, every staged run in place) and worth it
        (at most FILE_ROWS_PER_SPAN rows read per span asked), the files over the spans'
        times; none without a lake or without spans."""
        if self.lake is None or asked.bounds is None:
            return {}
        found = {}
        with psycopg.connect(self.dsn) as conn:
            for part in parts:
                files = file_ranges(conn, self.lake, self.schema, part.view, *asked.bounds)
                if files is None:
                    continue
                read = sum({f.run_id: f.run_rows for f in files}.values())
                if read <= FILE_ROWS_PER_SPAN * len(asked):
                    found[part.view.table] = files
        return found

    @staticmethod
    def _index_from_files(
        part: _ViewPart, files: list[FileRange], asked: SpanLookup, dictionary: KeyDictionary
    ) -> AsOfIndex:
        """A view's candidate rows read from its published files, sorted for the as-of match."""
        candidates = file_candidates(part.view, part.features, files, asked, dictionary)
        return AsOfIndex(dictionary, candidates, part.features)

    @staticmethod
    def _index(spans: SpanTable, part: _ViewPart, dictionary: KeyDictionary) -> AsOfIndex:
        """A view's candidate rows, sorted for the as-of match."""
        return AsOfIndex(dictionary, spans.rows(part.view, part.features), part.features)

    def _join_by_ranges(
        self, spans: SpanTable, part: _ViewPart, ranges: KeyRanges, dictionary: KeyDictionary
    ) -> RangeSpools:
        """A view of several key ranges: its candidate rows streamed from the server into one
        file per range, and its entity rows' codes and times (read back from pass 1) split into
        one file per range likewise, each in one pass; then per range, its rows sorted into an
        `AsOfIndex` and the features of that range's entity rows spooled, in entity-row order,
        for `batches` to merge."""
        folder = self._folder.name
        candidates = RangeSpools(ranges, candidate_schema(part.features), folder)
        entity_rows = RangeSpools(ranges, ROW_CODES, folder)
        try:
            for batch in spans.row_batches(part.view, part.features):
                code = batch.column(CODE).to_numpy().astype(np.int64)
                candidates.write(batch.cast(candidates.schema), ranges.of(code))
            candidates.finish()
            read = self._row_codes.reader()
            for n in _chunks(self._row_codes.rows):
                codes, times_us = read(n)
                code = codes[tuple(part.view.join_keys)]
                entity_rows.write(pa.record_batch([code, times_us], ROW_CODES), ranges.of(code))
            entity_rows.finish()
            schema = pa.schema([(s.name, ARROW_TYPES[s.dtype]) for s in part.features])
            features = RangeSpools(ranges, schema, folder)
            for index in range(len(ranges)):
                asof = AsOfIndex(dictionary, candidates.read(index), part.features)
                for rows in entity_rows.batches(index):
                    code, times_us = (column.to_numpy() for column in rows.columns)
                    features.append(index, self._values(part, asof, code, times_us))
            features.finish()
            return features
        finally:
            candidates.remove()
            entity_rows.remove()

    def batches(self, entity_batches: EntityBatches) -> Iterator[pa.RecordBatch]:
        """Pass 2: each batch of entity rows with the features appended, in order; JOIN_THREADS
        batches are joined at once (numpy and Arrow release the GIL), so memory holds a fixed
        number of batches. The temporary files are deleted at the end."""
        try:
            with ThreadPoolExecutor(JOIN_THREADS) as pool:
                read = self._row_codes.reader()
                pending: deque[Future[pa.RecordBatch]] = deque()
                for batch in entity_batches(None, BATCH_ROWS):
                    codes, times_us = read(batch.num_rows)
                    spooled = {
                        table: values.take(self.ranges[table].of(codes[keys]))
                        for table, values in self._spooled.items()
                        for keys in [tuple(self._part(table).view.join_keys)]
                    }
                    pending.append(pool.submit(self._join_batch, batch, codes, times_us, spooled))
                    if len(pending) > JOIN_THREADS:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
        finally:
            self._close()

    def _close(self) -> None:
        self._row_codes.close()
        for spooled in self._spooled.values():
            spooled.remove()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def _part(self, table: str) -> _ViewPart:
        return next(part for part in self.parts if part.view.table == table)

    def _join_batch(
        self,
        batch: pa.RecordBatch,
        codes: KeyCodes,
        times_us: np.ndarray,
        spooled: dict[str, pa.RecordBatch],
    ) -> pa.RecordBatch:
        """`codes` and `times_us`: per join key tuple, each row's key code, and its time (from
        pass 1: its `event_timestamp` is not parsed again); `spooled`: the features of the
        views joined range by range, for these rows."""
        columns: dict[str, pa.Array] = {}
        for part in self.parts:
            if part.view.table in spooled:
                values = spooled[part.view.table]
            else:
                code = codes.get(tuple(part.view.join_keys), np.full(len(times_us), -1, np.int64))
                values = self._values(part, self._indexes[part.view.table], code, times_us)
            for spec in part.features:
                columns[part.column(spec)] = values.column(spec.name)
        arrays = list(batch.columns)
        arrays += [columns[name] for name in self.output_schema.names[batch.num_columns :]]
        return pa.RecordBatch.from_arrays(arrays, schema=self.output_schema)

    def _values(
        self, part: _ViewPart, index: AsOfIndex, code: np.ndarray, times_us: np.ndarray
    ) -> pa.RecordBatch:
        """A view's features for entity rows of these key codes and times: the matched row's,
        the empty-window values (no row in [C(T), T]) or nulls (not covered)."""
        since_us = checkpoints_us(times_us, part.view)
        covered = _covered(times_us, self.coverage.get(part.view.table, []), part.view)
        row = index.match(code, times_us, since_us)
        row = np.where(row >= 0, row, index.empty_row)
        return index.values.take(np.where(covered, row, index.null_row))


def _chunks(rows: int) -> Iterator[int]:
    """`rows` cut into batches of at most BATCH_ROWS."""
    for start in range(0, rows, BATCH_ROWS):
        yield min(BATCH_ROWS, rows - start)


ROW_CODES = pa.schema([(CODE, pa.int64()), ("time_us", pa.int64())])
"""An entity row's key code (of one view's join keys) and time, as split by key range."""


def _span_kind(view: ResolvedView) -> tuple:
    return (*view.join_keys, view.definition.checkpoint_period)


class AsOfIndex:
    """A view's candidate rows sorted by (key code, feature_ts), for one binary search per
    entity row.

    `values` holds the features of every candidate row, then two more rows: at `empty_row` the
    empty-window values, at `null_row` nulls, so that every entity row's features are one
    `take`.
    """

    def __init__(
        self, keys: KeyDictionary | None, candidates: pa.Table | None, features: list[FeatureSpec]
    ):
        self.keys = keys
        types = {spec.name: ARROW_TYPES[spec.dtype] for spec in features}
        if candidates is None:
            timestamp = ARROW_TYPES["timestamp"]
            candidates = pa.table(
                {CODE: pa.array([], pa.int64()), "feature_ts": pa.array([], timestamp)}
                | {name: pa.array([], t) for name, t in types.items()}
            )
        stored_code = candidates[CODE].to_numpy().astype(np.int64)
        stored_us = candidates["feature_ts"].cast(pa.int64()).to_numpy()
        self.empty_row = candidates.num_rows
        self.null_row = candidates.num_rows + 1
        extra = {
            name: pa.array([spec.empty_value, None], types[name])
            for name, spec in ((spec.name, spec) for spec in features)
        }
        self.values = pa.RecordBatch.from_arrays(
            [
                pa.concat_arrays([*candidates[name].cast(t).chunks, extra[name]])
                for name, t in types.items()
            ],
            names=list(types),
        )
        self._stored_us = stored_us
        # Times become ranks among the stored times, so that (code, rank) packs into one int64
        # whose order is the order of (code, time). Codes are below 2**31.
        self._steps = np.unique(stored_us)
        packed = pack_pair(stored_code, np.searchsorted(self._steps, stored_us) + 1)
        self._order = np.argsort(packed)
        self._packed = packed[self._order]

    def match(self, code: np.ndarray, times_us: np.ndarray, since_us: np.ndarray) -> np.ndarray:
        """Per entity row, the index of the stored row with its key code and the latest
        `since <= feature_ts <= time`; -1 when there is none (or its code is -1)."""
        if len(self._packed) == 0:
            return np.full(len(code), -1, np.int64)
        wanted = pack_pair(np.maximum(code, 0), np.searchsorted(self._steps, times_us, "right"))
        order = np.argsort(wanted)  # sorted needles make the binary searches cache-friendly
        position = np.empty(len(wanted), np.int64)
        position[order] = np.searchsorted(self._packed, wanted[order], side="right") - 1
        position = np.maximum(position, 0)
        found = self._packed[position]
        row = self._order[position]
        hit = (code >= 0) & (found >> 32 == code) & (found <= wanted)
        hit &= self._stored_us[row] >= since_us
        return np.where(hit, row, -1)


def normalized_timestamps(entity_rows: pa.Table | pa.RecordBatch, offset: int = 0) -> pa.Array:
    """`event_timestamp` as timestamp[us, UTC]; naive times are UTC, ISO-8601 text is parsed.

    `offset`: the number of entity rows before these ones (for the row an error names)."""
    if EVENT_TIMESTAMP not in entity_rows.schema.names:
        raise InputError(f"{EVENT_TIMESTAMP}: missing column in the entity rows")
    column = _column(entity_rows, EVENT_TIMESTAMP)
    target = ARROW_TYPES["timestamp"]
    try:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = _parse_iso(column)
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        column = column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise InputError(
            f"{EVENT_TIMESTAMP}: not ISO-8601 timestamps like 2024-05-01T10:00:00Z ({e})"
        ) from None
    if column.null_count:
        row = offset + pc.index(pc.is_null(column), True).as_py()
        raise InputError(f"{EVENT_TIMESTAMP}: row {row} has no timestamp")
    return column


def _parse_iso(column: pa.Array) -> pa.Array:
    """ISO-8601 text as timestamp[us, UTC]; text without an offset is UTC."""
    text = pc.utf8_trim_whitespace(column)
    zoned = pc.match_substring_regex(text, r"(Z|[+-]\d\d:?\d\d)$")
    text = pc.if_else(zoned, text, pc.binary_join_element_wise(text, "+00:00", ""))
    return text.cast(ARROW_TYPES["timestamp"])


def _group_by_view(
    features: Sequence[tuple[ResolvedView, FeatureSpec]], entity_columns: list[str]
) -> list[_ViewPart]:
    if not features:
        raise InputError("features: give at least one feature reference or a service")
    parts: dict[str, _ViewPart] = {}
    seen: dict[str, str] = {}
    for view, spec in features:
        column = output_column(view, spec)
        if column in entity_columns:
            raise InputError(f"{column}: the entity rows already have this column")
        if seen.setdefault(column, view.table) != view.table:
            raise InputError(f"features: {column} is asked of two versions of {view.name}")
        part = parts.setdefault(view.table, _ViewPart(view))
        if spec not in part.features:
            part.features.append(spec)
    return list(parts.values())


def _key_dtypes(parts: list[_ViewPart], entity_columns: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for part in parts:
        for key in part.view.join_keys:
            if key not in entity_columns:
                raise InputError(
                    f"{key}: missing join key column (needed by feature view {part.view.name!r})"
                )
            keys.setdefault(key, part.view.key_dtypes[key])
    return keys


def _column(entity_rows: pa.Table | pa.RecordBatch, name: str) -> pa.Array:
    column = entity_rows.column(name)
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _cast_key(entity_rows: pa.Table | pa.RecordBatch, key: str, dtype: str) -> pa.Array:
    column = _column(entity_rows, key)
    try:
        return column.cast(ARROW_TYPES[dtype])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InputError(f"{key}: values are not {dtype} ({e})") from None


def check_key_text(keys: dict[str, pa.Array], offset: int = 0) -> None:
    """Refuse key text that PostgreSQL cannot hold (a NUL character), naming column and row.

    `offset`: the number of entity rows before these ones (for the row the error names)."""
    for key, column in keys.items():
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        has_nul = pc.fill_null(pc.match_substring(column, "\x00"), False)
        if pc.any(has_nul).as_py():
            row = offset + pc.index(has_nul, True).as_py()
            raise InputError(f"{key}: row {row} holds a NUL character, which no key can")


def _covered(
    times_us: np.ndarray, intervals: list[tuple[datetime, datetime]], view: ResolvedView
) -> np.ndarray:
    """Whether [C(T), T] lies inside one published interval."""
    since = checkpoints_us(times_us, view)
    covered = np.zeros(len(times_us), bool)
    for start, end in intervals:
        start_us, end_us = (int(ts.timestamp() * 1_000_000) for ts in (start, end))
        covered |= (start_us <= since) & (times_us < end_us)
    return covered


def _existing_tables(conn: psycopg.Connection, schema: str, parts: list[_ViewPart]) -> set[str]:
    """The views' tables that exist (a view never published has none: nothing is stored)."""
    names = [part.view.table for part in parts]
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s)",
        [schema, names],
    ).fetchall()
    return {row[0] for row in rows}
