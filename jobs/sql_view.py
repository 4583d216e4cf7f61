"""SQL views: the user's Spark SQL over `input_data`, evaluated at every step, changed rows only.

SQL is not mergeable, so each step is evaluated over its own window's rows. Every source row
is replicated into each step whose window holds it (`window / step` copies: 24 for a 1d window
at a 1h step), tagged with the step in a `__t` column of `input_data`, and the user's query is
run once for all steps with `__t` added to its outermost SELECT and GROUP BY. Cost: the rows
read times `window / step`, one shuffle; no per-step jobs.

The query must be one SELECT ... FROM input_data ... GROUP BY <entity keys> at its outermost
level (subqueries and CTEs see the tagged rows too, but only the outermost level is grouped by
step). An entity absent at a step has all-null features, so the step after its window empties
gets one row of nulls, and none after that; at a checkpoint, every entity whose features are not
all null gets a row (jobs/changes.py).
"""

from __future__ import annotations

import re
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.changes import PREVIOUS, STEP_END, keeps_row, staged_rows, typed
from jstore.model import ResolvedView, SqlFeatureView

INPUT_VIEW = "input_data"
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|--[^\n]*|/\*.*?\*/", re.S)
_SELECT = re.compile(r"\bselect(\s+(distinct|all)\b)?", re.I)
_GROUP_BY = re.compile(r"\bgroup\s+by\b", re.I)


def changed_sql_rows(
    spark: SparkSession, events: DataFrame, view: ResolvedView, start: datetime, end: datetime
) -> DataFrame:
    """The staged rows of a SQL view for the steps in [start, end)."""
    definition = view.definition
    assert isinstance(definition, SqlFeatureView)
    step = int(definition.step.total_seconds())
    window = int(definition.window.total_seconds())
    first, stop = int(start.timestamp()) - step, int(end.timestamp())
    seconds = F.unix_seconds(F.col(view.source.timestamp_name))
    tile = seconds - F.pmod(seconds, F.lit(step))
    low = F.greatest(tile + step, F.lit(first))
    high = F.least(tile + window, F.lit(stop - step))
    tagged = events.where(low <= high).withColumn(
        STEP_END, F.explode(F.sequence(low, high, F.lit(step)))
    )
    tagged.createOrReplaceTempView(INPUT_VIEW)
    result = spark.sql(step_grouped(definition.query))
    missing = [
        c for c in [*view.join_keys, *(f.name for f in view.features)] if c not in result.columns
    ]
    if missing:
        raise ValueError(f"query: the result has no column {missing[0]!r}")
    current = result.select(
        *view.join_keys, STEP_END, *(typed(F.col(f.name), f) for f in view.features)
    )
    previous = current.select(
        *view.join_keys,
        (F.col(STEP_END) + step).alias(STEP_END),
        *(F.col(f.name).alias(f"{PREVIOUS}{f.name}") for f in view.features),
    )
    compared = current.join(previous, [*view.join_keys, STEP_END], "full").where(
        (F.col(STEP_END) >= first + step)
        & (F.col(STEP_END) < stop)
        & keeps_row(view, F.col(STEP_END))
    )
    return staged_rows(compared, view)


def step_grouped(query: str) -> str:
    """The query with `__t` selected and grouped by at its outermost level."""
    masked = _QUOTED.sub(lambda m: " " * len(m.group()), query)
    depth, outer = 0, []
    for ch in masked:
        depth += (ch == "(") - (ch == ")")
        outer.append(ch if depth == 0 and ch != ")" else " ")
    top = "".join(outer)
    select, group_by = _SELECT.search(top), _GROUP_BY.search(top)
    if select is None or group_by is None:
        raise ValueError("query: must be SELECT ... FROM input_data ... GROUP BY <entity keys>")
    cut_select, cut_group = select.end(), group_by.end()
    return (
        f"{query[:cut_select]} {STEP_END},{query[cut_select:cut_group]} {STEP_END},"
        f"{query[cut_group:]}"
    )
