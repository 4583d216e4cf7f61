"""Reads of one view's table: latest rows per entity, one entity's history, changes for Redis.

Every read seeks through the primary key (join keys, feature_ts): "the latest row at or before
T" is one backward index step per entity.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from jstore.errors import InputError
from jstore.model import ResolvedView
from jstore.offline.arrow_copy import copy_out_batches, select_column
from jstore.offline.tables import PG_TYPES, table_id
from jstore.staging import staged_dtypes


def _keys(view: ResolvedView) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, view.join_keys))


def _features(view: ResolvedView, alias: str | None = None) -> sql.Composed:
    return sql.SQL(", ").join(
        sql.Identifier(*([alias] if alias else []), f.name) for f in view.features
    )


def latest_for_entities(
    conn: psycopg.Connection, schema: str, view: ResolvedView, keys: list[tuple]
) -> dict[tuple, dict[str, Any]]:
    """The latest row of each entity: `{key tuple: {"feature_ts": …, <feature>: …}}`.

    Entities without a row are absent. Key tuples are in `view.join_keys` order.
    """
    if not keys:
        return {}
    for key in keys:
        if len(key) != len(view.join_keys):
            raise InputError(
                f"keys: {key!r} does not match the join keys {', '.join(view.join_keys)}"
            )
    arrays = [[key[i] for key in keys] for i in range(len(view.join_keys))]
    unnest = sql.SQL(", ").join(
        sql.SQL("%s::{}[]").format(sql.SQL(PG_TYPES[view.key_dtypes[k]])) for k in view.join_keys
    )
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{k} = e.{k}").format(k=sql.Identifier(k)) for k in view.join_keys
    )
    query = sql.SQL(
        "SELECT e._row, f.* FROM unnest({unnest}) WITH ORDINALITY AS e({keys}, _row) "
        "CROSS JOIN LATERAL (SELECT t.feature_ts, {features} FROM {table} t WHERE {match} "
        "ORDER BY t.feature_ts DESC LIMIT 1) f"
    ).format(
        unnest=unnest,
        keys=_keys(view),
        features=_features(view, "t"),
        table=table_id(schema, view),
        match=match,
    )
    names = ["feature_ts", *(f.name for f in view.features)]
    with conn.cursor() as cur:
        cur.execute(query, arrays)
        return {keys[row[0] - 1]: dict(zip(names, row[1:], strict=True)) for row in cur}


def history(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    key: dict[str, Any],
    start: datetime | None,
    end: datetime | None,
) -> list[dict[str, Any]]:
    """One entity's stored rows with start <= feature_ts < end, oldest first."""
    missing = [k for k in view.join_keys if k not in key]
    if missing:
        raise InputError(f"{missing[0]}: missing join key of feature view {view.name!r}")
    conditions = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in view.join_keys]
    params: list[Any] = [key[k] for k in view.join_keys]
    if start is not None:
        conditions.append(sql.SQL("feature_ts >= %s"))
        params.append(start)
    if end is not None:
        conditions.append(sql.SQL("feature_ts < %s"))
        params.append(end)
    query = sql.SQL(
        "SELECT feature_ts, {features}, _run_id, _computed_at FROM {table} WHERE {where} "
        "ORDER BY feature_ts"
    ).format(
        features=_features(view),
        table=table_id(schema, view),
        where=sql.SQL(" AND ").join(conditions),
    )
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def changed_since(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    since: datetime | None,
    batch_rows: int = 50_000,
) -> Iterator[pa.RecordBatch]:
    """For each entity with a row whose `_computed_at > since`, its latest row by feature_ts.

    Columns: join keys, feature_ts, features, `_computed_at`. `since=None` gives every entity.
    (The materializer reads through the queues of changes.py instead, in one snapshot.)
    """
    entities = None
    if since is not None:
        entities = sql.SQL("SELECT {keys} FROM {table} WHERE _computed_at > {since}").format(
            keys=_keys(view), table=table_id(schema, view), since=sql.Literal(since)
        )
    return latest_rows(conn, schema, view, entities, batch_rows)


def latest_rows(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    entities: sql.Composable | None,
    batch_rows: int = 50_000,
) -> Iterator[pa.RecordBatch]:
    """The latest row by feature_ts of each entity that `entities` (a query of the join keys)
    yields, or of every entity when it is None; entities without a row give nothing.

    Columns: join keys, feature_ts, features, `_computed_at`.
    """
    table = table_id(schema, view)
    dtypes = {**staged_dtypes(view), "_computed_at": "timestamp"}
    columns = sql.SQL(", ").join(
        select_column(sql.Identifier("t", name), dtype) for name, dtype in dtypes.items()
    )
    where = sql.SQL("")
    if entities is not None:
        where = sql.SQL("WHERE ({keys}) IN ({entities})").format(
            keys=_keys(view), entities=entities
        )
    query = sql.SQL(
        "SELECT DISTINCT ON ({tkeys}) {columns} FROM {table} t {where} "
        "ORDER BY {tkeys}, t.feature_ts DESC"
    ).format(
        tkeys=sql.SQL(", ").join(sql.Identifier("t", k) for k in view.join_keys),
        columns=columns,
        table=table,
        where=where,
    )
    yield from copy_out_batches(conn, query, dtypes, batch_rows)
