"""The stored rows a point-in-time join may match, fetched for the as-of match in numpy.

The entity rows of one view are reduced to *spans*: per key tuple and checkpoint period asked,
the period's start C and the last time T asked in it (the only stored rows an entity row at T
can use are in [C(T), T]: every non-empty entity has a row at each checkpoint). The spans go to
PostgreSQL by ADBC's binary COPY into a temporary table; one index range scan per span returns
the rows in [C, T] as Arrow by binary COPY (ADBC): nothing is formatted or parsed as text, so a
text feature `NA` or `null` stays text and a null stays null. Large span sets are cut in chunks
fetched on parallel connections (the server writing rows is the cost, one core a backend).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from itertools import pairwise

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.tables import table_id

CODE = "_code"
FIRST = "_first"
LAST = "_last"
SCRATCH = "_jstore_join_spans"
CHUNK_SPANS = 2_000_000


def fetch_candidates(
    pool: ThreadPoolExecutor,
    dsn: str,
    schema: str,
    view: ResolvedView,
    features: list[FeatureSpec],
    spans: pa.Table,
) -> Callable[[], pa.Table]:
    """Start fetching, per span, the view's rows with FIRST <= feature_ts <= LAST; returns a
    function that waits for them: a table of CODE, feature_ts and the features.

    `spans` has the columns CODE (the key tuple's code), the view's join keys, FIRST and LAST
    (timestamps).
    """
    chunks = max(1, -(-spans.num_rows // CHUNK_SPANS))
    bounds = np.linspace(0, spans.num_rows, chunks + 1).astype(int)
    futures = [
        pool.submit(_fetch, dsn, schema, view, features, spans.slice(lo, hi - lo))
        for lo, hi in pairwise(bounds)
    ]

    def result() -> pa.Table:
        tables = [future.result() for future in futures]
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    return result


def _fetch(
    dsn: str, schema: str, view: ResolvedView, features: list[FeatureSpec], spans: pa.Table
) -> pa.Table:
    with adbc.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute("SET jit = off")  # compiling the plan costs more than it saves
        cursor.adbc_ingest(SCRATCH, spans, mode="create", temporary=True)
        cursor.execute(f"ANALYZE {SCRATCH}")  # without, the planner may seek per span
        bounds = (pc.min(spans[FIRST]).as_py(), pc.max(spans[LAST]).as_py())
        cursor.execute(_query(schema, view, features, bounds).as_string(None))
        return cursor.fetch_arrow_table()


def _query(
    schema: str,
    view: ResolvedView,
    features: list[FeatureSpec],
    bounds: tuple[datetime | None, datetime | None],
) -> sql.Composed:
    """The rows of every span: a hash join on (keys, checkpoint period) over one scan of the
    partitions within `bounds` (the spans' earliest start and latest end, constants the planner
    prunes partitions by), or one primary-key range scan per span when they are few."""
    match = sql.SQL(" AND ").join(
        sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in view.join_keys
    )
    selected = [sql.Identifier("s", CODE), sql.Identifier("t", "feature_ts")]
    selected += [sql.Identifier("t", spec.name) for spec in features]
    period = int(view.definition.checkpoint_period.total_seconds())
    return sql.SQL(
        "SELECT {selected} FROM {scratch} s JOIN {table} t ON {match} "
        "AND t.feature_ts >= s.{first} AND t.feature_ts <= s.{last} "
        "AND date_bin({period}, t.feature_ts, TIMESTAMPTZ 'epoch') = s.{first} "
        "AND t.feature_ts >= {low} AND t.feature_ts <= {high}"
    ).format(
        selected=sql.SQL(", ").join(selected),
        scratch=sql.Identifier(SCRATCH),
        table=table_id(schema, view),
        match=match,
        first=sql.Identifier(FIRST),
        last=sql.Identifier(LAST),
        period=sql.Literal(f"{period} seconds"),
        low=sql.Literal(bounds[0] or "-infinity"),
        high=sql.Literal(bounds[1] or "infinity"),
    )
