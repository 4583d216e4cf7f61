"""The stored rows a point-in-time join may match, fetched for the as-of match in numpy.

Per key tuple asked (a "span": its code, its key values, the first and last time asked), the
rows from the one in effect at the first time up to the last time: one backward index seek and
one index range scan per key tuple, the tuples going in by COPY to a temporary table. Views whose
features all have a fixed width come back by binary COPY read with numpy (nothing formatted or
parsed); views with text features by CSV COPY read by Arrow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from jstore.arrow_types import ARROW_TYPES
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.arrow_copy import (
    FIXED_WIDTH,
    POSTGRES_EPOCH_US,
    copy_in,
    copy_out,
    copy_out_fixed,
    from_epoch_us,
    select_column,
    wire_type,
)
from jstore.offline.tables import table_id

SPAN = "_span"
FIRST = "_first_us"
LAST = "_last_us"
SCRATCH = "_jstore_join_spans"
MASK_BITS = 63
EMPTY_LITERALS = {"int64": "0", "float64": "0", "bool": "false", "timestamp": "'epoch'"}
Candidates = tuple[np.ndarray, np.ndarray, dict[str, pa.Array]]


def candidates(
    connect: Callable[[], psycopg.Connection],
    schema: str,
    view: ResolvedView,
    features: list[FeatureSpec],
    spans: pa.Table,
) -> Candidates:
    """The stored rows that some entity row may match: per key tuple, from its row in effect at
    the first time asked up to the last time asked.

    `spans` has the columns SPAN (a code per key tuple), the view's join keys, FIRST and LAST
    (epoch µs). Returns the rows' span codes, feature_ts (epoch µs) and features.
    """
    scratch = sql.Identifier(SCRATCH)
    with connect() as conn:
        conn.execute("SET jit = off")  # compiling the plan costs more than it saves
        conn.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} ({})").format(
                scratch,
                sql.SQL(", ").join(
                    [sql.SQL("{} bigint").format(sql.Identifier(SPAN))]
                    + [
                        sql.SQL("{} {}").format(
                            sql.Identifier(k), sql.SQL(wire_type(view.key_dtypes[k]))
                        )
                        for k in view.join_keys
                    ]
                    + [sql.SQL("{} bigint").format(sql.Identifier(c)) for c in (FIRST, LAST)]
                ),
            )
        )
        copy_in(conn, scratch, spans.column_names, spans.to_batches())
        conn.execute(sql.SQL("ANALYZE {}").format(scratch))
        if all(spec.dtype in FIXED_WIDTH for spec in features):
            return _binary(conn, schema, view, features, scratch)
        return _csv(conn, schema, view, features, scratch)


def _binary(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    features: list[FeatureSpec],
    scratch: sql.Identifier,
) -> Candidates:
    """Binary COPY with one fixed row layout, read by numpy in one go: no number or time is
    formatted or parsed. A null is sent as a placeholder value plus its bit in a null mask (one
    bigint per 63 features: a flag per feature would cost a field each)."""
    selected = [sql.Identifier("s", SPAN), sql.Identifier("t", "feature_ts")]
    layout = [("span", FIXED_WIDTH["int64"]), ("feature_ts", FIXED_WIDTH["timestamp"])]
    for i, spec in enumerate(features):
        column = sql.Identifier("t", spec.name)
        selected.append(
            sql.SQL("coalesce({}, {})").format(column, sql.SQL(EMPTY_LITERALS[spec.dtype]))
        )
        layout.append((f"v{i}", FIXED_WIDTH[spec.dtype]))
    for group in range(0, len(features), MASK_BITS):
        bits = [
            sql.SQL("((t.{} IS NULL)::int::bigint << {})").format(
                sql.Identifier(spec.name), sql.Literal(bit)
            )
            for bit, spec in enumerate(features[group : group + MASK_BITS])
        ]
        selected.append(sql.SQL("({})").format(sql.SQL(" | ").join(bits)))
        layout.append((f"nulls{group // MASK_BITS}", FIXED_WIDTH["int64"]))
    rows = copy_out_fixed(conn, _query(schema, view, scratch, selected), layout)
    values = {}
    for i, spec in enumerate(features):
        array = rows[f"v{i}"]
        if spec.dtype == "timestamp":
            array = array.astype(np.int64) + POSTGRES_EPOCH_US
        null = (rows[f"nulls{i // MASK_BITS}"] >> (i % MASK_BITS)) & 1 == 1
        array = pa.array(array.astype(array.dtype.newbyteorder("=")), mask=null)
        values[spec.name] = array.cast(ARROW_TYPES[spec.dtype])
    stored_us = rows["feature_ts"].astype(np.int64) + POSTGRES_EPOCH_US
    return rows["span"].astype(np.int64), stored_us, values


def _csv(
    conn: psycopg.Connection,
    schema: str,
    view: ResolvedView,
    features: list[FeatureSpec],
    scratch: sql.Identifier,
) -> Candidates:
    """CSV COPY parsed by Arrow, for views with text features (variable width)."""
    selected = [
        sql.Identifier("s", SPAN),
        select_column(sql.Identifier("t", "feature_ts"), "timestamp"),
    ] + [select_column(sql.Identifier("t", spec.name), spec.dtype) for spec in features]
    dtypes = {SPAN: "int64", "feature_ts": "int64"}
    dtypes.update({spec.name: spec.dtype for spec in features})
    table = copy_out(conn, _query(schema, view, scratch, selected), dtypes)
    values = {spec.name: table[spec.name].combine_chunks() for spec in features}
    return (
        table[SPAN].to_numpy().astype(np.int64),
        table["feature_ts"].to_numpy().astype(np.int64),
        values,
    )


def _query(
    schema: str,
    view: ResolvedView,
    scratch: sql.Identifier,
    selected: list[sql.Composable],
) -> sql.Composed:
    """Per key tuple asked: one backward index seek for the row in effect at its first time,
    then an index range scan up to its last time."""

    def match(alias: str) -> sql.Composed:
        return sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(
                sql.Identifier(alias, k),
                from_epoch_us(sql.Identifier("s", k))
                if view.key_dtypes[k] == "timestamp"
                else sql.Identifier("s", k),
            )
            for k in view.join_keys
        )

    table = table_id(schema, view)
    return sql.SQL(
        "SELECT {selected} FROM {scratch} s JOIN {table} t ON {match_t} "
        "AND t.feature_ts <= {last} "
        "AND t.feature_ts >= coalesce(("
        "SELECT f.feature_ts FROM {table} f WHERE {match_f} AND f.feature_ts <= {first} "
        "ORDER BY f.feature_ts DESC LIMIT 1), '-infinity')"
    ).format(
        selected=sql.SQL(", ").join(selected),
        scratch=scratch,
        table=table,
        match_t=match("t"),
        match_f=match("f"),
        first=from_epoch_us(sql.Identifier("s", FIRST)),
        last=from_epoch_us(sql.Identifier("s", LAST)),
    )
