"""Building tiles from landed rows (jobs/tile_store.py `canonical_tiles`): each Kafka record
counted once and every table row kept, with the events shuffled once, by entity, and every float
partial summed in event-time order whatever the memory."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pyspark.sql import functions as F

from jobs.landing import landed_rows
from jobs.tile_store import canonical_tiles, tile_inputs
from jstore.model import Aggregation, WindowedFeatureView
from tests.compute.memory_pressure import aggregation_short_of_memory
from tests.compute.windowing_helpers import at, clicks, resolved, write_landing

pytestmark = pytest.mark.spark

SPEND = resolved(
    WindowedFeatureView(
        name="spend",
        entities=["user"],
        source="clicks",
        step="1h",
        aggregations=[
            Aggregation(function="count", windows=["1h"]),
            Aggregation(function="sum", column="amount", windows=["1h"]),
        ],
    )
)


def tiles_of(spark, lake, events: list[dict]):
    write_landing(lake, events)
    folders = [str(p) for p in sorted((lake / "landing" / "clicks").iterdir())]
    rows = landed_rows(spark, folders, clicks, ["user_id"], F.lit(True))
    return canonical_tiles(rows, SPEND, 3600)


def test_a_record_landed_twice_counts_once_and_every_table_row_counts(spark, lake):
    record = {"user_id": "u1", "amount": 2.5, "ts": at("10:05"), "_offset": 7}
    table_row = {"user_id": "u1", "amount": 1.0, "ts": at("10:20"), "_offset": None}
    other_partition = dict(record, _partition=1)
    events = [record, dict(record), table_row, dict(table_row), other_partition]
    tiles = tiles_of(spark, lake, events).select("user_id", "__tile", "__rows", "__sum_amount")
    assert [tuple(r) for r in tiles.collect()] == [("u1", int(at("10:00").timestamp()), 4, 7.0)]


def test_the_events_are_shuffled_once_by_entity_and_not_sorted_by_record(spark, lake):
    events = [{"user_id": "u1", "amount": 2.5, "ts": at("10:05"), "_offset": 1}]
    plan = tiles_of(spark, lake, events)._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Exchange hashpartitioning(") == 1
    assert "Exchange hashpartitioning(user_id" in plan
    assert "SortAggregate" not in plan


def test_only_the_columns_the_tiles_read_are_read_and_shuffled(spark, lake):
    events = [{"user_id": "u1", "amount": 2.5, "page": "home", "ts": at("10:05"), "_offset": 1}]
    plan = tiles_of(spark, lake, events)._jdf.queryExecution().executedPlan().toString()
    (read_schema,) = [line for line in plan.splitlines() if "ReadSchema:" in line]
    read = read_schema.split("ReadSchema: struct<")[1]
    assert [c.split(":")[0] for c in read.rstrip(">").split(",")] == [
        "user_id",
        "amount",
        "ts",
        "_topic",
        "_partition",
        "_offset",
    ]
    assert tile_inputs(SPEND) == ["user_id", "ts", "_topic", "_partition", "_offset", "amount"]


def test_a_float_sum_is_added_in_event_time_order_even_when_aggregation_runs_out_of_memory(
    spark, lake
):
    """An aggregation short of memory (forced here: tests/compute/memory_pressure.py) must not
    split a tile's sum: (1e16 + 1) + 1 ... is 1e16 one event at a time, but 1e16 + 8
    summed in pieces."""
    amounts = [1e16] + [1.0] * 9
    events = [
        {"user_id": "u1", "amount": a, "ts": at("10:00") + timedelta(seconds=i), "_offset": i}
        for i, a in enumerate(amounts)
    ]
    in_order = 0.0
    for amount in amounts:
        in_order += amount
    with aggregation_short_of_memory(spark):
        tiles = tiles_of(spark, lake, events).select("__rows", "__sum_amount").collect()
    assert [tuple(r) for r in tiles] == [(10, in_order)]
    assert in_order == 1e16
