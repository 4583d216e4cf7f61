"""SQL views: a float aggregate of the user's query adds a window's rows in one fixed order (the
step, the query's GROUP BY columns, the event time, then the other columns it reads), whatever the
input's order and partitioning and whatever the memory, so equal windows give bit-identical
values (jobs/sql_view.py `group_order`)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from jobs.sql_view import changed_sql_rows
from jstore.model import FieldSpec, SqlFeatureView
from tests.compute.memory_pressure import aggregation_short_of_memory
from tests.compute.windowing_helpers import at, resolved

pytestmark = pytest.mark.spark

SPEND = resolved(
    SqlFeatureView(
        name="spend",
        entities=["user"],
        source="clicks",
        step="1h",
        window="2h",
        query="SELECT user_id, SUM(amount) AS spend_2h, COUNT(*) AS n_2h "
        "FROM input_data GROUP BY user_id",
        features=[
            FieldSpec(name="spend_2h", dtype="float64"),
            FieldSpec(name="n_2h", dtype="int64"),
        ],
    )
)

AMOUNTS = [1.0] * 9 + [1e16, -1e16]
"""Summed in this order, 8.0 (1e16 + 9 rounds to 1e16 + 8); backwards, 9.0."""
EVENTS = [
    {"user_id": "u1", "amount": amount, "ts": at("10:00") + timedelta(seconds=i)}
    for i, amount in enumerate(AMOUNTS)
]


def staged(spark, events) -> list[tuple]:
    rows = changed_sql_rows(spark, events, SPEND, at("10:00"), at("15:00"))
    return sorted(tuple(r.values()) for r in rows.toArrow().to_pylist())


def events_frame(spark, events: list[dict], partitions: int = 1):
    frame = spark.createDataFrame(events, "user_id string, amount double, ts timestamp")
    return frame.coalesce(1) if partitions == 1 else frame.repartition(partitions)


EXPECTED = [
    ("u1", at("11:00"), 8.0, 11),
    ("u1", at("13:00"), None, None),
]
"""The window of 11:00 and of 12:00 hold the same eleven events: one row at 11:00, none at
12:00, and the window empties at 13:00."""


def test_the_sum_is_added_in_event_time_order_whatever_the_input_order(spark):
    assert sum_in_order(AMOUNTS) == 8.0
    assert staged(spark, events_frame(spark, EVENTS)) == EXPECTED
    assert staged(spark, events_frame(spark, EVENTS[::-1])) == EXPECTED
    assert staged(spark, events_frame(spark, EVENTS, partitions=3)) == EXPECTED


def test_equal_windows_give_equal_sums_when_aggregation_runs_out_of_memory(spark):
    """A hash aggregate spilling every two rows summed the window of 11:00 to 4.0 and the same
    rows at 12:00 to 8.0, a change row at 12:00 for no change."""
    with aggregation_short_of_memory(spark):
        in_order = staged(spark, events_frame(spark, EVENTS))
        backwards = staged(spark, events_frame(spark, EVENTS[::-1], partitions=3))
    assert in_order == EXPECTED
    assert backwards == EXPECTED


def test_landed_events_in_several_kafka_partitions_give_the_same_rows(spark, compute):
    """Through the job's own path: landed files, one per Kafka partition, read back and their
    copies dropped by a shuffle of the records."""
    landed = [dict(e, _partition=i % 3) for i, e in enumerate(EVENTS[::-1])]
    with aggregation_short_of_memory(spark):
        assert compute(SPEND.definition, landed, at("10:00"), at("15:00")) == EXPECTED


def sum_in_order(amounts: list[float]) -> float:
    total = 0.0
    for amount in amounts:
        total += amount
    return total


SHOP_SPEND = resolved(
    SqlFeatureView(
        name="shop_spend",
        entities=["shop"],
        source="clicks",
        step="1h",
        window="2h",
        query="SELECT shop_id, country, SUM(amount) AS spend_2h FROM input_data "
        "GROUP BY shop_id, country",
        features=[FieldSpec(name="spend_2h", dtype="float64")],
    )
)


@pytest.mark.parametrize(
    ("view", "columns", "aggregate"),
    [
        (SPEND, "user_id string, amount double, page string, ts timestamp", "[__t, user_id]"),
        (
            SHOP_SPEND,
            "country string, shop_id long, amount double, page string, ts timestamp",
            "[__t, shop_id, country]",
        ),
    ],
)
def test_each_step_is_aggregated_by_a_sort_aggregate_in_its_entity_partition(
    spark, view, columns, aggregate
):
    """The events are shuffled once, by entity, and nothing else is: each (step, entity) is
    aggregated in its partition's task by a sort aggregate over rows sorted by the query's
    GROUP BY (in its own order), the event time, then the other columns it reads, and the query
    runs once (each step's previous value is a `lag` in the same partition). A column the query
    does not read (`page`) is neither sorted nor shuffled, though the events' plan names it.
    Checked in the plan adaptive execution ran, which re-plans each stage."""
    events = [dict(e, country="fr", shop_id=7, page="home") for e in EVENTS]
    landed = spark.createDataFrame(events, columns)
    frame = landed.select(*landed.columns)  # as the landing zone is read: every column named
    rows = changed_sql_rows(spark, frame, view, at("10:00"), at("15:00"))
    rows.collect()
    plan = rows._jdf.queryExecution().executedPlan().toString()
    final = re.sub(r"#\d+L?", "", plan.split("== Initial Plan ==")[0])
    (aggregated,) = [line for line in final.splitlines() if "Aggregate" in line]
    assert f"SortAggregate(key={aggregate}" in aggregated
    below = final.split(aggregated)[1].splitlines()
    sort = next(line for line in below if "Sort [" in line)
    keys = aggregate.strip("[]").split(", ")
    order = ", ".join(f"{c} ASC NULLS FIRST" for c in [*keys, "ts", "amount"])
    assert f"Sort [{order}]" in sort
    assert [line for line in final.splitlines() if "page" in line and "Scan " not in line] == []
    (exchange,) = [line for line in final.splitlines() if "Exchange" in line]
    entity = ", ".join(view.join_keys)
    assert f"Exchange hashpartitioning({entity}, 4), REPARTITION_BY_COL" in exchange
    assert below.index(exchange) > below.index(sort)
