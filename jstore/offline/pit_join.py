"""The point-in-time join: each entity row gets, per view, the latest row at or before its time.

For an entity row (join keys, `event_timestamp` T, any other columns) and a view V:
- T inside V's published coverage (some merged interval [s, e) with s <= T < e): the features of
  V's latest row with `feature_ts <= T` (a row stamped exactly T counts: it aggregates only
  events before T), or, when the entity has no such row, the empty-window values
  (`FeatureSpec.empty_value`: 0 for count, count_distinct and sum, else null). DESIGN.md
  "Absent means empty".
- T outside V's coverage: null for every feature of V, whatever is stored, because the value at
  T was never computed. These rows are counted per view (`uncovered_rows`).

Every entity row is kept, in order, its columns unchanged; the features are appended as
`<view>__<feature>`. In PostgreSQL: the entity rows are COPYed into a temporary table with their
row number, then one query per view does one backward index seek per entity row
(LEFT JOIN LATERAL … ORDER BY feature_ts DESC LIMIT 1); the views run on parallel connections.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.arrow_copy import (
    ARROW_TYPES,
    copy_in,
    copy_out,
    from_epoch_us,
    select_column,
    wire_type,
)
from jstore.offline.tables import table_id
from jstore.repo import DefinitionError

EVENT_TIMESTAMP = "event_timestamp"
ROW = "_row"
FOUND = "_found"
SCRATCH_PREFIX = "_jstore_join_"
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
        covered = _covered(times, coverage.get(part.view.table, []))
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


def _covered(times: pa.Array, intervals: list[tuple[datetime, datetime]]) -> pa.Array:
    covered = pa.array([False] * len(times), pa.bool_())
    for start, end in intervals:
        inside = pc.and_(
            pc.greater_equal(times, pa.scalar(start, times.type)),
            pc.less(times, pa.scalar(end, times.type)),
        )
        covered = pc.or_(covered, inside)
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


def _fetch(
    connect: Callable[[], psycopg.Connection],
    schema: str,
    parts: list[_ViewPart],
    key_columns: dict[str, pa.Array],
    times: pa.Array,
) -> list[pa.Table]:
    """Per view, per entity row in input order: whether a row was found, and its features.

    The entity rows go to an unlogged scratch table (dropped at the end) so that each view is
    joined on its own connection, in parallel: most of the time goes into the server's output
    of the rows, which one backend does on one core.
    """
    n = len(times)
    entity = pa.table({ROW: pa.array(range(n), pa.int64()), **key_columns, EVENT_TIMESTAMP: times})
    first_keys = parts[0].view.join_keys
    entity = entity.take(
        pc.sort_indices(
            entity, [(k, "ascending") for k in first_keys] + [(EVENT_TIMESTAMP, "ascending")]
        )
    )
    scratch = sql.Identifier(schema, f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}")
    dtypes = _dtypes_of(key_columns, parts)
    with connect() as conn:
        conn.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(
                scratch,
                sql.SQL(", ").join(
                    [sql.SQL("{} bigint").format(sql.Identifier(ROW))]
                    + [
                        sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(wire_type(dtype)))
                        for k, dtype in dtypes.items()
                    ]
                    + [sql.SQL("{} bigint").format(sql.Identifier(EVENT_TIMESTAMP))]
                ),
            )
        )
        try:
            copy_in(conn, scratch, entity.column_names, entity.to_batches())
            conn.execute(sql.SQL("ANALYZE {}").format(scratch))
            with ThreadPoolExecutor(min(len(parts), MAX_CONNECTIONS)) as pool:
                return list(
                    pool.map(lambda part: _fetch_view(connect, schema, part, scratch), parts)
                )
        finally:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(scratch))


def _fetch_view(
    connect: Callable[[], psycopg.Connection],
    schema: str,
    part: _ViewPart,
    scratch: sql.Identifier,
) -> pa.Table:
    query, dtypes = _join_query(schema, part, scratch)
    with connect() as conn:
        conn.execute("SET jit = off")  # compiling the plan costs more than it saves
        fetched = copy_out(conn, query, dtypes)
    return fetched.take(pc.sort_indices(fetched[ROW]))


def _dtypes_of(key_columns: dict[str, pa.Array], parts: list[_ViewPart]) -> dict[str, str]:
    dtypes: dict[str, str] = {}
    for part in parts:
        for key in part.view.join_keys:
            dtypes.setdefault(key, part.view.key_dtypes[key])
    return {k: dtypes[k] for k in key_columns}


def _join_query(
    schema: str, part: _ViewPart, scratch: sql.Identifier
) -> tuple[sql.Composed, dict[str, str]]:
    """Per entity row: its row number, whether the view has a row at or before its time, and
    that row's features: one backward seek through the primary key per entity row."""
    dtypes = {ROW: "int64", FOUND: "bool"}
    dtypes.update({part.column(spec): spec.dtype for spec in part.features})
    selected = sql.SQL(", ").join(
        [
            sql.SQL("e.{}").format(sql.Identifier(ROW)),
            sql.SQL("(f.feature_ts IS NOT NULL) AS {}").format(sql.Identifier(FOUND)),
        ]
        + [select_column(sql.Identifier("f", spec.name), spec.dtype) for spec in part.features]
    )
    match = sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(
            sql.Identifier("t", k),
            from_epoch_us(sql.Identifier("e", k))
            if part.view.key_dtypes[k] == "timestamp"
            else sql.Identifier("e", k),
        )
        for k in part.view.join_keys
    )
    query = sql.SQL(
        "SELECT {selected} FROM {scratch} e LEFT JOIN LATERAL ("
        "SELECT t.feature_ts, {features} FROM {table} t "
        "WHERE {match} AND t.feature_ts <= {event_ts} "
        "ORDER BY t.feature_ts DESC LIMIT 1) f ON true"
    ).format(
        selected=selected,
        scratch=scratch,
        features=sql.SQL(", ").join(sql.Identifier("t", spec.name) for spec in part.features),
        table=table_id(schema, part.view),
        match=match,
        event_ts=from_epoch_us(sql.Identifier("e", EVENT_TIMESTAMP)),
    )
    return query, dtypes
