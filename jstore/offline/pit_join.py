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
holds one batch of entity rows, not all of them:
1. `prepare` reads only the join keys and `event_timestamp`: per view, the *spans* asked, one
   per key tuple and checkpoint period: the period's start and the last time asked in it (an
   Arrow hash aggregation per batch, merged). PostgreSQL returns the stored rows inside the
   spans (pit_candidates.py), a connection per view, in parallel; they are sorted once by (key
   code, feature_ts) into an `AsOfIndex`, which ends with two extra rows: the empty-window
   values and nulls.
2. `batches`: per batch of entity rows, each row's key code and one binary search find its
   row, or one of the two extra rows (no row in [C(T), T]; not covered); one `take` per view
   appends its features, and the batch is yielded.
One LATERAL … ORDER BY feature_ts DESC LIMIT 1 seek per entity row measured slower: its server
output per entity row costs more than the candidate rows (figures in docs/offline_store.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from jstore.arrow_types import ARROW_TYPES
from jstore.errors import InputError
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.pit_candidates import CODE, FIRST, LAST, fetch_candidates

EVENT_TIMESTAMP = "event_timestamp"
MAX_CONNECTIONS = 4
JOIN_THREADS = 2
BATCH_ROWS = 131_072
Coverage = dict[str, list[tuple[datetime, datetime]]]
EntityBatches = Callable[[list[str] | None], Iterable[pa.RecordBatch]]
"""Called once per pass: the entity rows, in order, in batches, with only the columns named
(all of them for None)."""


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
) -> JoinResult:
    """The entity rows with one column per requested feature (see the module docstring)."""
    join = PointInTimeJoin(dsn, schema, features, coverage)

    def batches(columns: list[str] | None) -> list[pa.RecordBatch]:
        rows = entity_rows if columns is None else entity_rows.select(columns)
        return rows.to_batches(max_chunksize=BATCH_ROWS)

    join.prepare(batches, entity_rows.schema)
    joined = pa.Table.from_batches(list(join.batches(batches)), join.output_schema)
    return JoinResult(joined, join.uncovered_rows)


class PointInTimeJoin:
    """The join of a stream of entity rows with the features (two passes, see the module)."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        features: Sequence[tuple[ResolvedView, FeatureSpec]],
        coverage: Coverage,
    ):
        self.dsn = dsn
        self.schema = schema
        self.features = list(features)
        self.coverage = coverage
        self.parts: list[_ViewPart] = []
        self.keys: dict[str, str] = {}
        self.uncovered_rows: dict[str, int] = {}
        """Per view table, the entity rows past its published coverage (set by `prepare`)."""
        self.output_schema = pa.schema([])
        self._indexes: dict[str, AsOfIndex] = {}

    def prepare(self, entity_batches: EntityBatches, entity_schema: pa.Schema) -> None:
        """Pass 1: check the entity rows, collect the spans, fetch the candidate rows."""
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
        spans: dict[tuple, _Spans] = {}  # views of the same keys and checkpoints share spans
        for part in joined:
            spans.setdefault(_span_kind(part.view), _Spans(part.view))
        self.uncovered_rows = {part.view.table: 0 for part in self.parts}
        offset = 0
        for batch in entity_batches([*self.keys, EVENT_TIMESTAMP]):
            times = normalized_timestamps(batch, offset)
            times_us = times.cast(pa.int64()).to_numpy()
            keys = {k: _cast_key(batch, k, dtype) for k, dtype in self.keys.items()}
            check_key_text(keys, offset)
            for part in self.parts:
                covered = _covered(times_us, self.coverage.get(part.view.table, []), part.view)
                self.uncovered_rows[part.view.table] += len(covered) - int(np.sum(covered))
            for collected in spans.values():
                collected.add(keys, times_us)
            offset += batch.num_rows
        shared: dict[tuple[str, ...], KeyCodes] = {}  # views of the same keys saw the same tuples
        with ThreadPoolExecutor(MAX_CONNECTIONS) as pool:
            pending = []
            tables = {kind: collected.table(shared) for kind, collected in spans.items()}
            for part in joined:
                kind = _span_kind(part.view)
                fetched = fetch_candidates(
                    pool, self.dsn, self.schema, part.view, part.features, tables[kind]
                )
                pending.append((part, spans[kind].codes, fetched))
            for part, codes, fetched in pending:
                self._indexes[part.view.table] = AsOfIndex(codes, fetched(), part.features)
        for part in self.parts:  # a view never published: nothing stored
            self._indexes.setdefault(part.view.table, AsOfIndex(None, None, part.features))

    def batches(self, entity_batches: EntityBatches) -> Iterator[pa.RecordBatch]:
        """Pass 2: each batch of entity rows with the features appended, in order; JOIN_THREADS
        batches are joined at once (numpy and Arrow release the GIL), so memory holds a fixed
        number of batches."""
        with ThreadPoolExecutor(JOIN_THREADS) as pool:
            pending: deque[Future[pa.RecordBatch]] = deque()
            for batch in entity_batches(None):
                pending.append(pool.submit(self._join_batch, batch))
                if len(pending) > JOIN_THREADS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _join_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        times_us = normalized_timestamps(batch).cast(pa.int64()).to_numpy()
        keys = {k: _cast_key(batch, k, dtype) for k, dtype in self.keys.items()}
        columns: dict[str, pa.Array] = {}
        codes: dict[int, np.ndarray] = {}  # per KeyCodes: views of the same keys share one
        for part in self.parts:
            index = self._indexes[part.view.table]
            code = np.full(len(times_us), -1, np.int64)
            if index.codes is not None:
                if id(index.codes) not in codes:
                    codes[id(index.codes)] = index.codes.lookup(
                        [keys[k] for k in part.view.join_keys]
                    )
                code = codes[id(index.codes)]
            since_us = checkpoints_us(times_us, part.view)
            covered = _covered(times_us, self.coverage.get(part.view.table, []), part.view)
            row = index.match(code, times_us, since_us)
            row = np.where(row >= 0, row, index.empty_row)
            values = index.values.take(np.where(covered, row, index.null_row))
            for spec in part.features:
                columns[part.column(spec)] = values.column(spec.name)
        arrays = list(batch.columns)
        arrays += [columns[name] for name in self.output_schema.names[batch.num_columns :]]
        return pa.RecordBatch.from_arrays(arrays, schema=self.output_schema)


class KeyCodes:
    """Dense codes of distinct key tuples, and the lookup of other rows' key tuples.

    Each key column is coded by its distinct values (an Arrow hash lookup), the per-column codes
    are combined one column at a time and made dense again (so no product overflows).
    """

    def __init__(self, keys: list[pa.Array]):
        self._values = [pc.unique(key) for key in keys]
        self._steps: list[np.ndarray] = []
        combined = self._part(0, keys[0])
        for i in range(1, len(keys)):
            combined = combined * len(self._values[i]) + self._part(i, keys[i])
            step = np.unique(combined)
            self._steps.append(step)
            combined = np.searchsorted(step, combined)
        self.codes = combined
        """The code of each distinct tuple given, in its order."""

    def _part(self, i: int, key: pa.Array) -> np.ndarray:
        found = pc.index_in(key, value_set=self._values[i])
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    def lookup(self, keys: list[pa.Array]) -> np.ndarray:
        """The code of each row's key tuple; -1 for a tuple not among the distinct ones, or
        with a null key."""
        combined = self._part(0, keys[0])
        missing = combined < 0
        for i, step in enumerate(self._steps, start=1):
            part = self._part(i, keys[i])
            missing |= part < 0
            combined = np.maximum(combined, 0) * len(self._values[i]) + np.maximum(part, 0)
            position = np.minimum(np.searchsorted(step, combined), len(step) - 1)
            missing |= step[position] != combined
            combined = position
        return np.where(missing, -1, combined)


def _span_kind(view: ResolvedView) -> tuple:
    return (*view.join_keys, view.definition.checkpoint_period)


class _Spans:
    """Per key tuple and checkpoint period of one view: the last time asked."""

    def __init__(self, view: ResolvedView):
        self.view = view
        self._parts: list[pa.Table] = []
        self.codes: KeyCodes | None = None

    def add(self, keys: dict[str, pa.Array], times_us: np.ndarray) -> None:
        columns = {k: keys[k] for k in self.view.join_keys}
        columns[FIRST] = checkpoints_us(times_us, self.view)
        columns[LAST] = times_us
        table = pa.table(columns)
        for k in self.view.join_keys:
            table = table.filter(pc.is_valid(table[k]))
        self._parts.append(_last_per_span(table, self.view.join_keys))
        if len(self._parts) > 8:
            self._parts = [_last_per_span(pa.concat_tables(self._parts), self.view.join_keys)]

    def table(self, shared: dict[tuple[str, ...], KeyCodes]) -> pa.Table:
        """CODE, the join keys, FIRST and LAST (timestamps); sets `codes`, taken from `shared`
        when a view of the same join keys made them (the same entity rows gave its spans)."""
        if self._parts:
            spans = _last_per_span(pa.concat_tables(self._parts), self.view.join_keys)
        else:
            spans = pa.table(
                {k: pa.array([], ARROW_TYPES[self.view.key_dtypes[k]]) for k in self.view.join_keys}
                | {FIRST: pa.array([], pa.int64()), LAST: pa.array([], pa.int64())}
            )
        self._parts = []
        names = tuple(self.view.join_keys)
        if names not in shared:
            tuples = spans.select(list(names)).group_by(list(names)).aggregate([])
            shared[names] = KeyCodes([tuples[k].combine_chunks() for k in names])
        self.codes = shared[names]
        code = self.codes.lookup([spans[k].combine_chunks() for k in self.view.join_keys])
        timestamp = ARROW_TYPES["timestamp"]
        return pa.table(
            {CODE: code}
            | {k: spans[k] for k in self.view.join_keys}
            | {FIRST: spans[FIRST].cast(timestamp), LAST: spans[LAST].cast(timestamp)}
        )


def _last_per_span(table: pa.Table, keys: list[str]) -> pa.Table:
    grouped = table.group_by([*keys, FIRST], use_threads=False).aggregate([(LAST, "max")])
    return grouped.rename_columns(
        [LAST if c == f"{LAST}_max" else c for c in grouped.column_names]
    ).select([*keys, FIRST, LAST])


class AsOfIndex:
    """A view's candidate rows sorted by (key code, feature_ts), for one binary search per
    entity row.

    `values` holds the features of every candidate row, then two more rows: at `empty_row` the
    empty-window values, at `null_row` nulls, so that every entity row's features are one
    `take`.
    """

    def __init__(
        self, codes: KeyCodes | None, candidates: pa.Table | None, features: list[FeatureSpec]
    ):
        self.codes = codes
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
        packed = (stored_code << 32) | (np.searchsorted(self._steps, stored_us) + 1)
        self._order = np.argsort(packed)
        self._packed = packed[self._order]

    def match(self, code: np.ndarray, times_us: np.ndarray, since_us: np.ndarray) -> np.ndarray:
        """Per entity row, the index of the stored row with its key code and the latest
        `since <= feature_ts <= time`; -1 when there is none (or its code is -1)."""
        if len(self._packed) == 0:
            return np.full(len(code), -1, np.int64)
        wanted = (np.maximum(code, 0) << 32) | np.searchsorted(self._steps, times_us, "right")
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


def checkpoints_us(times_us: np.ndarray, view: ResolvedView) -> np.ndarray:
    """Each time's checkpoint C(T), in microseconds since the epoch."""
    period = int(view.definition.checkpoint_period.total_seconds()) * 1_000_000
    return times_us - np.mod(times_us, period)


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
