"""SQL views: the user's Spark SQL over `input_data`, evaluated at every step, changed rows only.

SQL is not mergeable, so each step is evaluated over its own window's rows. Every source row
is replicated into each step whose window holds it (`window / step` copies: 24 for a 1d window
at a 1h step), tagged with the step in a `__t` column of `input_data`, and the user's query is
run once for all steps with `__t` added to its outermost SELECT and GROUP BY. The events are
shuffled once, by entity, before they are replicated; each entity's rows are then sorted in its
partition and aggregated in that order (`group_order`), so equal windows give bit-identical
floats, and each step meets the one before in the same partition (`with_previous`). Cost: the
rows read times `window / step`, sorted within partitions, one shuffle; no per-step jobs.

The query must be one SELECT ... FROM input_data ... GROUP BY <entity keys> at its outermost
level (subqueries and CTEs see the tagged rows too, but only the outermost level is grouped by
step). An entity absent at a step has all-null features, so the step after its window empties
gets one row of nulls, and none after that; at a checkpoint, every entity whose features are not
all null gets a row (jobs/changes.py).
"""

from __future__ import annotations

import re
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.changes import PREVIOUS, STEP_END, keeps_row, staged_rows, typed
from jstore.model import ResolvedView, SqlFeatureView

INPUT_VIEW = "input_data"
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|--[^\n]*|/\*.*?\*/", re.S)
_SELECT = re.compile(r"\bselect(\s+(distinct|all)\b)?", re.I)
_GROUP_BY = re.compile(r"\bgroup\s+by\b", re.I)
_AFTER_GROUP_BY = re.compile(
    r"\b(having|window|qualify|order\s+by|sort\s+by|cluster\s+by|distribute\s+by|limit|offset"
    r"|union|intersect|except|minus|with)\b|;",
    re.I,
)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_COLUMN = re.compile(r"(?:(?:`[^`]*`|\w+)\.)?`?(\w+)`?")
SORT_AGGREGATE = "spark.sql.execution.replaceHashWithSortAgg"


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
    # each entity's events in one partition, shuffled before they are replicated
    by_entity = events.where(low <= high).repartition(*view.join_keys)
    tagged = by_entity.withColumn(STEP_END, F.explode(F.sequence(low, high, F.lit(step))))
    result = query_in_group_order(spark, tagged, view, definition.query)
    missing = [
        c for c in [*view.join_keys, *(f.name for f in view.features)] if c not in result.columns
    ]
    if missing:
        raise ValueError(f"query: the result has no column {missing[0]!r}")
    current = result.select(
        *view.join_keys, STEP_END, *(typed(F.col(f.name), f) for f in view.features)
    )
    compared = with_previous(current, view, step).where(
        (F.col(STEP_END) >= first + step)
        & (F.col(STEP_END) < stop)
        & keeps_row(view, F.col(STEP_END))
    )
    return staged_rows(compared, view)


def query_in_group_order(
    spark: SparkSession, tagged: DataFrame, view: ResolvedView, query: str
) -> DataFrame:
    """The query, grouped by step (`step_grouped`), over `tagged` as `input_data`, its rows
    given in `group_order` and aggregated in that order."""
    grouped = step_grouped(query)
    tagged.createOrReplaceTempView(INPUT_VIEW)
    read = columns_read(spark.sql(grouped), tagged.columns)
    grouped_by = grouping_columns(query, tagged.columns) or view.join_keys
    tagged.sortWithinPartitions(*group_order(view, grouped_by, read)).createOrReplaceTempView(
        INPUT_VIEW
    )
    # read when Spark plans the rows, after the caller returns: the setting stays on
    spark.conf.set(SORT_AGGREGATE, "true")
    return spark.sql(grouped)


def with_previous(current: DataFrame, view: ResolvedView, step: int) -> DataFrame:
    """Each entity's value at every step where it has one or had one a step before: its features
    (null when absent) and their value at `t - step` (`__prev_<feature>`, null when absent).

    A `lag` and a `lead` over each entity's steps, in the partition the query's rows are already
    in (no shuffle, and the query is evaluated once): a step's row takes the previous value when
    the entity's previous step is `t - step`; a step whose next one is not `t + step` also yields
    the all-null row at `t + step` that drains the entity."""
    names = [f.name for f in view.features]
    by_step = Window.partitionBy(*view.join_keys).orderBy(STEP_END)
    t = F.col(STEP_END)
    follows = F.lag(STEP_END).over(by_step) == t - step
    gap_after = "__gap_after"
    neighbours = current.select(
        *view.join_keys,
        STEP_END,
        *names,
        *(F.when(follows, F.lag(n).over(by_step)).alias(f"{PREVIOUS}{n}") for n in names),
        F.coalesce(F.lead(STEP_END).over(by_step) != t + step, F.lit(True)).alias(gap_after),
    )
    at_step = F.struct(STEP_END, *names, *(f"{PREVIOUS}{n}" for n in names))
    drained = F.struct(
        (t + step).alias(STEP_END),
        *(typed(F.lit(None), f) for f in view.features),
        *(F.col(n).alias(f"{PREVIOUS}{n}") for n in names),
    )
    row = F.explode(F.array(at_step, F.when(F.col(gap_after), drained))).alias("row")
    rows = neighbours.select(*view.join_keys, row).where(F.col("row").isNotNull())
    return rows.select(*view.join_keys, "row.*")


def group_order(view: ResolvedView, grouped_by: list[str], read: list[str]) -> list[str]:
    """The order of `input_data`'s rows within an entity's partition: `__t`, the query's
    grouping columns, the event time, then the other columns the query reads (`read`). Each
    group's rows then come in event-time order whatever the input's order and partitioning,
    ties in one order too: rows equal in every column the query reads are the same to it (and
    the columns it does not read are neither read nor shuffled).

    Spark aggregates a child clustered and sorted on the grouping keys (`__t` first, as
    `step_grouped` adds it) by a sort aggregate when `spark.sql.execution.replaceHashWithSortAgg`
    is on: one group at a time in its partition's task, its rows added in this order (no
    further shuffle, no partial buffers merged), whatever the memory. A hash aggregate short of
    memory spills its map and merges a group's partial buffers, adding a float sum in pieces:
    equal windows would differ in their last bits and emit a change row
    (tests/compute/test_sql_view_float_order.py)."""
    return list(dict.fromkeys([STEP_END, *grouped_by, view.source.timestamp_name, *read]))


def columns_read(query: DataFrame, columns: list[str]) -> list[str]:
    """The columns (of `columns`) that `query`, run over the view `input_data`, refers to: the
    references of every node of its analyzed plan above the view. Sorting by the columns the
    query never reads would make Spark read and shuffle them too."""
    names: set[str] = set()
    nodes = [query._jdf.queryExecution().analyzed()]
    while nodes:
        node = nodes.pop()
        if node.nodeName() == "View":
            continue
        references = node.references().toSeq()
        names.update(references.apply(i).name().lower() for i in range(references.size()))
        children = node.children()
        nodes.extend(children.apply(i) for i in range(children.size()))
    return [c for c in columns if c.lower() in names]


def grouping_columns(query: str, columns: list[str]) -> list[str] | None:
    """The columns (of `columns`, in their spelling) the query's outermost GROUP BY lists, in
    its order; None when it groups by anything but plain columns."""
    top = _outer_level(query)
    group_by = _GROUP_BY.search(top)
    if group_by is None:
        return None
    start = group_by.end()
    after = _AFTER_GROUP_BY.search(top, start)
    end = after.start() if after else len(top)
    commas = [start + m.start() for m in re.finditer(",", top[start:end])]
    bounds = zip([start, *(c + 1 for c in commas)], [*commas, end], strict=True)
    items = [_COMMENT.sub(" ", query[a:b]).strip() for a, b in bounds]
    by_name = {c.lower(): c for c in columns}
    names = [_COLUMN.fullmatch(item) for item in items]
    if not all(n and n.group(1).lower() in by_name for n in names):
        return None
    return [by_name[n.group(1).lower()] for n in names]


def step_grouped(query: str) -> str:
    """The query with `__t` selected and grouped by at its outermost level."""
    top = _outer_level(query)
    select, group_by = _SELECT.search(top), _GROUP_BY.search(top)
    if select is None or group_by is None:
        raise ValueError("query: must be SELECT ... FROM input_data ... GROUP BY <entity keys>")
    cut_select, cut_group = select.end(), group_by.end()
    return (
        f"{query[:cut_select]} {STEP_END},{query[cut_select:cut_group]} {STEP_END},"
        f"{query[cut_group:]}"
    )


def _outer_level(query: str) -> str:
    """The query with quoted text, comments and everything inside parentheses blanked out,
    same length: what remains is its outermost level."""
    masked = _QUOTED.sub(lambda m: " " * len(m.group()), query)
    depth, outer = 0, []
    for ch in masked:
        depth += (ch == "(") - (ch == ")")
        outer.append(ch if depth == 0 and ch != ")" else " ")
    return "".join(outer)
