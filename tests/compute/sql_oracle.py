"""A naive reference for SQL views: every step, the user's query run by DuckDB over that step's
window of raw events, then the change-only rule.

Written from DESIGN.md's semantics of a step's value (the events in `[t - window, t)`) and
docs/setup.md's rule for SQL views (an entity absent at a step has all-null features; at a
checkpoint every entity not all null gets a row), to check jobs/sql_view.py's one-query plan
(steps tagged, one shuffle, lag/lead between steps). The query must be one both Spark SQL and
DuckDB read the same way.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa

from jstore.arrow_types import ARROW_TYPES
from jstore.model import ResolvedView, SqlFeatureView
from tests.compute.oracle import landed_once


def naive_sql_rows(view: ResolvedView, events: list[dict], start: datetime, end: datetime) -> list:
    """Sorted (keys..., feature_ts, features...) of the rows in [start, end): where an entity's
    features changed since `t - step` (absent is all null), or at a checkpoint where they are
    not all null."""
    definition = view.definition
    assert isinstance(definition, SqlFeatureView)
    ts, step, window = view.source.timestamp_name, definition.step, definition.window
    period = definition.checkpoint_period.total_seconds()
    columns = pa.schema([(f.name, ARROW_TYPES[f.dtype]) for f in view.source.schema_])
    unique = landed_once(events, view.join_keys)
    names = [f.name for f in view.features]
    empty = (None,) * len(names)

    def at(t: datetime) -> dict[tuple, tuple]:
        rows = [{c: e.get(c) for c in columns.names} for e in unique if t - window <= e[ts] < t]
        table = pa.Table.from_pylist(rows, schema=columns)
        with duckdb.connect() as con:
            con.register("input_data", table)
            result = con.sql(definition.query).to_arrow_table().to_pylist()
        return {
            tuple(r[k] for k in view.join_keys): tuple(r[n] for n in names)
            for r in result
            if all(r[k] is not None for k in view.join_keys)
        }

    rows = []
    t, before = start, at(start - step)
    while t < end:
        now = at(t)
        checkpoint = t.timestamp() % period == 0
        for key in now.keys() | before.keys():
            value = now.get(key, empty)
            if value != before.get(key, empty) or (checkpoint and value != empty):
                rows.append((*key, t, *value))
        t, before = t + step, now
    return sorted(rows)
