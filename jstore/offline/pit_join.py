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
  known from what was computed. These rows are counted per view (`uncovered_rows`).

Every entity row is kept, in order, its columns unchanged; the features are appended as
`<view>__<feature>`.

How: per view (on parallel connections), PostgreSQL sends the stored rows any entity row may
match — per key tuple asked, from its row in effect at the first time asked to the last time
asked (pit_candidates.py) — and the as-of match is done here in numpy: sort those rows by
(key, feature_ts), one binary search per entity row. One LATERAL … ORDER BY feature_ts DESC
LIMIT 1 seek per entity row measured slower, even sending only the distinct rows it finds: the
seeks cost more than the extra candidate rows (figures in docs/offline_store.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from jstore.arrow_types import ARROW_TYPES
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.pit_candidates import FIRST, LAST, SPAN, candidates
from jstore.repo import DefinitionError

EVENT_TIMESTAMP = "event_timestamp"
FOUND = "_found"
MAX_CONNECTIONS = 4
UNCOVERED_METADATA = b"jstore.uncovered_rows"
Coverage = dict[str, list[tuple[datetime, datetime]]]


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


def uncovered_rows(joined: pa.Table) -> dict[str, int]:
    """Per view table, how many entity rows got nulls because their time is not covered."""
    metadata = joined.schema.metadata or {}
    return json.loads(metadata.get(UNCOVERED_METADATA, b"{}"))


def point_in_time_join(
    connect: Callable[[], psycopg.Connection],
    schema: str,
    entity_rows: pa.Table,
    features: Sequence[tuple[ResolvedView, FeatureSpec]],
    coverage: Coverage,
) -> pa.Table:
    """The entity rows with one column per requested feature (see the module docstring)."""
    parts = _group_by_view(features, entity_rows.column_names)
    keys = _key_dtypes(parts, entity_rows.column_names)
    times = normalized_timestamps(entity_rows)
    key_columns = {k: _cast_key(entity_rows, k, dtype) for k, dtype in keys.items()}
    n = entity_rows.num_rows
    with connect() as conn:
        existing = _existing_tables(conn, schema, parts)
    found: dict[str, pa.Array] = {}
    stored: dict[str, pa.Array] = {}
    joined_parts = [part for part in parts if part.view.table in existing]
    if n and joined_parts:
        fetched = _fetch(connect, schema, joined_parts, key_columns, times)
        for part, table in zip(joined_parts, fetched, strict=True):
            found[part.view.table] = table[FOUND]
            for spec in part.features:
                stored[part.column(spec)] = table[part.column(spec)]
    columns: dict[str, pa.Array] = {}
    uncovered: dict[str, int] = {}
    for part in parts:
        covered = _covered(times, coverage.get(part.view.table, []), part.view)
        uncovered[part.view.table] = n - pc.sum(covered).as_py() if n else 0
        view_found = found.get(part.view.table, pa.nulls(n, pa.bool_()).fill_null(False))
        for spec in part.features:
            arrow_type = ARROW_TYPES[spec.dtype]
            value = stored.get(part.column(spec), pa.nulls(n, arrow_type))
            empty = pa.scalar(spec.empty_value, arrow_type)
            filled = pc.if_else(view_found, value, empty)
            columns[part.column(spec)] = pc.if_else(covered, filled, pa.scalar(None, arrow_type))
    output = entity_rows
    for view, spec in features:
        column = output_column(view, spec)
        if column not in output.column_names:
            output = output.append_column(column, columns[column])
    metadata = {**(entity_rows.schema.metadata or {}), UNCOVERED_METADATA: json.dumps(uncovered)}
    return output.replace_schema_metadata(metadata)


def normalized_timestamps(entity_rows: pa.Table) -> pa.Array:
    """`event_timestamp` as timestamp[us, UTC]; naive times are UTC, ISO-8601 text is parsed."""
    if EVENT_TIMESTAMP not in entity_rows.column_names:
        raise DefinitionError(f"{EVENT_TIMESTAMP}: missing column in the entity rows")
    column = entity_rows[EVENT_TIMESTAMP].combine_chunks()
    target = ARROW_TYPES["timestamp"]
    try:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = _parse_iso(column)
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        column = column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise DefinitionError(
            f"{EVENT_TIMESTAMP}: not ISO-8601 timestamps like 2024-05-01T10:00:00Z ({e})"
        ) from None
    if column.null_count:
        row = pc.index(pc.is_null(column), True).as_py()
        raise DefinitionError(f"{EVENT_TIMESTAMP}: row {row} has no timestamp")
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
        raise DefinitionError("features: give at least one feature reference or a service")
    parts: dict[str, _ViewPart] = {}
    seen: dict[str, str] = {}
    for view, spec in features:
        column = output_column(view, spec)
        if column in entity_columns:
            raise DefinitionError(f"{column}: the entity rows already have this column")
        if seen.setdefault(column, view.table) != view.table:
            raise DefinitionError(f"features: {column} is asked of two versions of {view.name}")
        part = parts.setdefault(view.table, _ViewPart(view))
        if spec not in part.features:
            part.features.append(spec)
    return list(parts.values())


def _key_dtypes(parts: list[_ViewPart], entity_columns: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for part in parts:
        for key in part.view.join_keys:
            if key not in entity_columns:
                raise DefinitionError(
                    f"{key}: missing join key column (needed by feature view {part.view.name!r})"
                )
            keys.setdefault(key, part.view.key_dtypes[key])
    return keys


def _cast_key(entity_rows: pa.Table, key: str, dtype: str) -> pa.Array:
    column = entity_rows[key].combine_chunks()
    try:
        return column.cast(ARROW_TYPES[dtype])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DefinitionError(f"{key}: values are not {dtype} ({e})") from None


def checkpoints_us(times_us: np.ndarray, view: ResolvedView) -> np.ndarray:
    """Each time's checkpoint C(T), in microseconds since the epoch."""
    period = int(view.definition.checkpoint_period.total_seconds()) * 1_000_000
    return times_us - np.mod(times_us, period)


def _covered(
    times: pa.Array, intervals: list[tuple[datetime, datetime]], view: ResolvedView
) -> pa.Array:
    """Whether [C(T), T] lies inside one published interval."""
    times_us = times.cast(pa.int64()).to_numpy()
    since = checkpoints_us(times_us, view)
    covered = np.zeros(len(times_us), bool)
    for start, end in intervals:
        start_us, end_us = (int(ts.timestamp() * 1_000_000) for ts in (start, end))
        covered |= (start_us <= since) & (times_us < end_us)
    return pa.array(covered, pa.bool_())


def _existing_tables(conn: psycopg.Connection, schema: str, parts: list[_ViewPart]) -> set[str]:
    """The views' tables that exist (a view never published has none: nothing is stored)."""
    names = [part.view.table for part in parts]
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s)",
        [schema, names],
    ).fetchall()
    return {row[0] for row in rows}


def _fetch(
    connect: Callable[[], psycopg.Connection],
    schema: str,
    parts: list[_ViewPart],
    key_columns: dict[str, pa.Array],
    times: pa.Array,
) -> list[pa.Table]:
    """Per view, per entity row in input order: whether a row was found, and its features.

    Each view runs on its own connection, in parallel: most of the time is the server writing
    the candidate rows, which one backend does on one core.
    """
    with ThreadPoolExecutor(min(len(parts), MAX_CONNECTIONS)) as pool:
        return list(
            pool.map(lambda part: _fetch_view(connect, schema, part, key_columns, times), parts)
        )


def _fetch_view(
    connect: Callable[[], psycopg.Connection],
    schema: str,
    part: _ViewPart,
    key_columns: dict[str, pa.Array],
    times: pa.Array,
) -> pa.Table:
    entity_code, first_rows = _entity_codes([key_columns[k] for k in part.view.join_keys])
    entity_us = times.cast(pa.int64()).to_numpy()
    spans = _spans(part.view.join_keys, key_columns, entity_code, first_rows, entity_us)
    stored_code, stored_us, values = candidates(connect, schema, part.view, part.features, spans)
    matched = latest_at_or_before(stored_code, stored_us, entity_code, entity_us)
    if len(stored_us):  # a row before T's checkpoint is not T's value (see the module docstring)
        matched_us = stored_us[matched.fill_null(0).to_numpy()]
        stale = pa.array(matched_us < checkpoints_us(entity_us, part.view))
        matched = pc.if_else(stale, pa.scalar(None, pa.int64()), matched)
    columns = {FOUND: matched.is_valid()}
    for spec in part.features:
        columns[part.column(spec)] = values[spec.name].take(matched)
    return pa.table(columns)


def _entity_codes(keys: list[pa.Array]) -> tuple[np.ndarray, np.ndarray]:
    """Per entity row, a dense code of its key tuple (-1 when a key is null: such a row matches
    nothing); and per code, the first row that has it."""
    code = np.zeros(len(keys[0]), np.int64)
    for key in keys:
        encoded = key.dictionary_encode()
        part = encoded.indices.fill_null(-1).to_numpy().astype(np.int64)
        code = np.where((code >= 0) & (part >= 0), code * len(encoded.dictionary) + part, -1)
        _, first, dense = np.unique(code, return_index=True, return_inverse=True)
        if code.min(initial=0) < 0:  # -1 sorts first: keep it -1
            dense, first = dense - 1, first[1:]
        code = dense.astype(np.int64)
    return code, first


def _spans(
    keys: list[str],
    key_columns: dict[str, pa.Array],
    entity_code: np.ndarray,
    first_rows: np.ndarray,
    entity_us: np.ndarray,
) -> pa.Table:
    """Per key tuple asked (its code): the key values and the first and last time asked."""
    known = entity_code >= 0
    first = np.full(len(first_rows), np.iinfo(np.int64).max)
    last = np.full(len(first_rows), np.iinfo(np.int64).min)
    np.minimum.at(first, entity_code[known], entity_us[known])
    np.maximum.at(last, entity_code[known], entity_us[known])
    return pa.table(
        {SPAN: np.arange(len(first_rows), dtype=np.int64)}
        | {k: key_columns[k].take(first_rows) for k in keys}
        | {FIRST: first, LAST: last}
    )


def latest_at_or_before(
    stored_code: np.ndarray,
    stored_us: np.ndarray,
    entity_code: np.ndarray,
    entity_us: np.ndarray,
) -> pa.Array:
    """Per entity row, the index of the stored row with its key code and the latest
    `feature_ts <= event_timestamp`; null when there is none (or its code is -1). Stored
    (code, feature_ts) are unique (the primary key); codes are below 2**31.

    Times become ranks among the stored times, so that (code, rank) packs into one int64 whose
    order is the order of (code, time): one sort of the stored rows and one binary search per
    entity row.
    """
    if len(stored_us) == 0:
        return pa.nulls(len(entity_us), pa.int64())
    steps = np.unique(stored_us)
    stored_packed = (stored_code << 32) | (np.searchsorted(steps, stored_us) + 1)
    entity_packed = (np.maximum(entity_code, 0) << 32) | np.searchsorted(
        steps, entity_us, side="right"
    )
    order = np.argsort(stored_packed)
    ordered = stored_packed[order]
    position = np.maximum(np.searchsorted(ordered, entity_packed, side="right") - 1, 0)
    hit = (entity_code >= 0) & (ordered[position] >> 32 == entity_code)
    hit &= ordered[position] <= entity_packed
    return pa.array(order[position], pa.int64(), mask=~hit)
