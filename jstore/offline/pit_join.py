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
row number, then one query does one backward index seek per entity row and view
(LEFT JOIN LATERAL … ORDER BY feature_ts DESC LIMIT 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
)
from jstore.offline.tables import PG_TYPES, table_id
from jstore.repo import DefinitionError

EVENT_TIMESTAMP = "event_timestamp"
ROW = "_row"
ENTITY_TABLE = "_jstore_entity_rows"
UNCOVERED_METADATA = b"jstore.uncovered_rows"
Coverage = dict[str, list[tuple[datetime, datetime]]]


@dataclass
class _ViewPart:
    """One view version of a join and the features asked of it."""

    view: ResolvedView
    features: list[FeatureSpec] = field(default_factory=list)

    def column(self, feature: FeatureSpec) -> str:
        return f"{self.view.name}__{feature.name}"


def output_column(view: ResolvedView, feature: FeatureSpec) -> str:
    return f"{view.name}__{feature.name}"


def uncovered_rows(joined: pa.Table) -> dict[str, int]:
    """Per view table, how many entity rows got nulls because their time is not covered."""
    metadata = joined.schema.metadata or {}
    return json.loads(metadata.get(UNCOVERED_METADATA, b"{}"))


def point_in_time_join(
    conn: psycopg.Connection,
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
    existing = _existing_tables(conn, schema, parts)
    found: dict[str, pa.Array] = {}
    stored: dict[str, pa.Array] = {}
    if n and existing:
        fetched = _fetch(conn, schema, parts, existing, key_columns, times)
        for part in parts:
            if part.view.table in existing:
                found[part.view.table] = fetched[f"_found_{part.view.table}"]
                for spec in part.features:
                    stored[part.column(spec)] = fetched[part.column(spec)]
    output = entity_rows
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
            output = output.append_column(
                part.column(spec), pc.if_else(covered, filled, pa.scalar(None, arrow_type))
            )
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
    seen: set[str] = set()
    for view, spec in features:
        part = parts.setdefault(view.table, _ViewPart(view))
        column = part.column(spec)
        if column in entity_columns:
            raise DefinitionError(f"{column}: the entity rows already have this column")
        if column in seen:
            continue
        if any(
            p.view.name == view.name and p.view.version != view.version and spec in p.features
            for p in parts.values()
        ):
            raise DefinitionError(f"features: {column} is asked of two versions of {view.name}")
        seen.add(column)
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
    conn: psycopg.Connection,
    schema: str,
    parts: list[_ViewPart],
    existing: set[str],
    key_columns: dict[str, pa.Array],
    times: pa.Array,
) -> pa.Table:
    """Per entity row (in input order): per view whether a row was found, and its features."""
    n = len(times)
    entity = pa.table({ROW: pa.array(range(n), pa.int64()), **key_columns, EVENT_TIMESTAMP: times})
    first_keys = parts[0].view.join_keys
    entity = entity.take(
        pc.sort_indices(
            entity, [(k, "ascending") for k in first_keys] + [(EVENT_TIMESTAMP, "ascending")]
        )
    )
    joined_parts = [p for p in parts if p.view.table in existing]
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")  # compiling the plan costs more than it saves
        conn.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
                sql.Identifier(ENTITY_TABLE),
                sql.SQL(", ").join(
                    [sql.SQL("{} bigint").format(sql.Identifier(ROW))]
                    + [
                        sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(PG_TYPES[dtype]))
                        for k, dtype in _dtypes_of(key_columns, parts).items()
                    ]
                    + [sql.SQL("{} bigint").format(sql.Identifier(EVENT_TIMESTAMP))]
                ),
            )
        )
        copy_in(conn, sql.Identifier(ENTITY_TABLE), entity.column_names, entity.to_batches())
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(ENTITY_TABLE)))
        query, dtypes = _join_query(schema, joined_parts, list(key_columns))
        fetched = copy_out(conn, query, dtypes)
    order = pc.sort_indices(fetched[ROW])
    return fetched.take(order)


def _dtypes_of(key_columns: dict[str, pa.Array], parts: list[_ViewPart]) -> dict[str, str]:
    dtypes: dict[str, str] = {}
    for part in parts:
        for key in part.view.join_keys:
            dtypes.setdefault(key, part.view.key_dtypes[key])
    return {k: dtypes[k] for k in key_columns}


def _join_query(
    schema: str, parts: list[_ViewPart], keys: list[str]
) -> tuple[sql.Composed, dict[str, str]]:
    dtypes: dict[str, str] = {ROW: "int64"}
    selected = [sql.SQL("e.{}").format(sql.Identifier(ROW))]
    laterals = []
    for i, part in enumerate(parts):
        alias = f"v{i}"
        found = f"_found_{part.view.table}"
        dtypes[found] = "bool"
        selected.append(
            sql.SQL("({}.feature_ts IS NOT NULL) AS {}").format(
                sql.Identifier(alias), sql.Identifier(found)
            )
        )
        for spec in part.features:
            dtypes[part.column(spec)] = spec.dtype
            selected.append(
                sql.SQL("{} AS {}").format(
                    select_column(sql.Identifier(alias, spec.name), spec.dtype),
                    sql.Identifier(part.column(spec)),
                )
            )
        match = sql.SQL(" AND ").join(
            sql.SQL("t.{k} = e.{k}").format(k=sql.Identifier(k)) for k in part.view.join_keys
        )
        laterals.append(
            sql.SQL(
                " LEFT JOIN LATERAL (SELECT t.feature_ts, {features} FROM {table} t "
                "WHERE {match} AND t.feature_ts <= e.{ts} ORDER BY t.feature_ts DESC LIMIT 1) "
                "{alias} ON true"
            ).format(
                features=sql.SQL(", ").join(
                    sql.Identifier("t", spec.name) for spec in part.features
                ),
                table=table_id(schema, part.view),
                match=match,
                ts=sql.Identifier(EVENT_TIMESTAMP),
                alias=sql.Identifier(alias),
            )
        )
    entity_rows = sql.SQL("SELECT {}, {}, {} AS {} FROM {}").format(
        sql.Identifier(ROW),
        sql.SQL(", ").join(map(sql.Identifier, keys)),
        from_epoch_us(sql.Identifier(EVENT_TIMESTAMP)),
        sql.Identifier(EVENT_TIMESTAMP),
        sql.Identifier(ENTITY_TABLE),
    )
    query = sql.SQL("SELECT {} FROM ({}) e{}").format(
        sql.SQL(", ").join(selected), entity_rows, sql.SQL("").join(laterals)
    )
    return query, dtypes
