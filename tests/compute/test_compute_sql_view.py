"""SQL views: the user's query over each step's window, same stamping and change-only rule."""

from __future__ import annotations

import pytest

from jobs.sql_view import grouping_columns, step_grouped
from jstore.model import FieldSpec, SqlFeatureView
from tests.compute.sql_oracle import naive_sql_rows
from tests.compute.test_compute_oracle import random_events
from tests.compute.windowing_helpers import at, both_evaluations, resolved

QUERY = """
    SELECT user_id,
           COUNT_IF(amount >= 100) AS big_2h,
           MAX(amount) - MIN(amount) AS range_2h  -- spread of amounts
    FROM input_data
    WHERE page <> 'test (ignore)'
    GROUP BY user_id
"""
big_spends = SqlFeatureView(
    name="big_spends",
    entities=["user"],
    source="clicks",
    step="1h",
    window="2h",
    query=QUERY,
    features=[
        FieldSpec(name="big_2h", dtype="int64"),
        FieldSpec(name="range_2h", dtype="float64"),
    ],
)


@pytest.mark.spark
def test_sql_view_rows_change_only_and_drain_to_nulls_once(compute):
    events = [
        {"user_id": "u1", "amount": 150.0, "page": "a", "ts": at("10:10")},
        {"user_id": "u1", "amount": 20.0, "page": "a", "ts": at("10:40")},
        {"user_id": "u1", "amount": 50.0, "page": "a", "ts": at("11:30")},
        {"user_id": "u1", "amount": 999.0, "page": "test (ignore)", "ts": at("11:31")},
        {"user_id": "u2", "amount": 100.0, "page": "b", "ts": at("12:00")},
    ]
    assert compute(big_spends, events, at("10:00"), at("17:00")) == [
        ("u1", at("11:00"), 1, 130.0),
        ("u1", at("13:00"), 0, 0.0),
        ("u1", at("14:00"), None, None),
        ("u2", at("13:00"), 1, 0.0),
        ("u2", at("15:00"), None, None),
    ]


@pytest.mark.spark
def test_sql_view_entity_that_leaves_and_returns_drains_each_time(compute):
    """Its windows empty at 13:00 and again at 17:00: one row of nulls each time, and the value
    it returns with at 15:00 is compared with those nulls."""
    events = [
        {"user_id": "u1", "amount": 150.0, "page": "a", "ts": at("10:10")},
        {"user_id": "u1", "amount": 20.0, "page": "a", "ts": at("14:30")},
    ]
    assert compute(big_spends, events, at("10:00"), at("18:00")) == [
        ("u1", at("11:00"), 1, 0.0),
        ("u1", at("13:00"), None, None),
        ("u1", at("15:00"), 0, 0.0),
        ("u1", at("17:00"), None, None),
    ]


@pytest.mark.spark
def test_sql_view_interval_starting_mid_window(compute):
    """[12:00, 14:00) derives the value at 11:00 (1, 130.0) itself: 12:00 is unchanged."""
    events = [
        {"user_id": "u1", "amount": 150.0, "page": "a", "ts": at("10:10")},
        {"user_id": "u1", "amount": 20.0, "page": "a", "ts": at("10:40")},
        {"user_id": "u1", "amount": 50.0, "page": "a", "ts": at("11:30")},
    ]
    assert compute(big_spends, events, at("12:00"), at("14:00")) == [
        ("u1", at("13:00"), 0, 0.0),
    ]


@pytest.mark.spark
def test_sql_view_checkpoint_rows_for_every_entity_not_all_null(compute):
    """2d 00:00 is a checkpoint: u1's unchanged (1, 130.0) gets a row; u2's only row is filtered
    out by the query's WHERE, so its features are all null and it gets none."""
    events = [
        {"user_id": "u1", "amount": 150.0, "page": "a", "ts": at("22:30")},
        {"user_id": "u1", "amount": 20.0, "page": "a", "ts": at("22:40")},
        {"user_id": "u2", "amount": 500.0, "page": "test (ignore)", "ts": at("23:30")},
    ]
    assert compute(big_spends, events, at("22:00"), at("2d 03:00")) == [
        ("u1", at("23:00"), 1, 130.0),
        ("u1", at("2d 00:00"), 1, 130.0),
        ("u1", at("2d 01:00"), None, None),
    ]
    assert compute(big_spends, events, at("2d 00:00"), at("2d 01:00")) == [
        ("u1", at("2d 00:00"), 1, 130.0),
    ]


@pytest.mark.spark
@both_evaluations
def test_sql_view_matches_the_naive_oracle(compute):
    """Seeded random events (nulls, duplicates, three days) against every step's query run by
    DuckDB over that step's window alone, across the 2d and 3d 00:00 checkpoints."""
    view = SqlFeatureView(
        name="every_sql",
        entities=["user"],
        source="clicks",
        step="1h",
        window="3h",
        query="""
            SELECT user_id, COUNT(*) AS clicks, SUM(amount) AS spent, AVG(amount) AS mean,
                   COUNT(DISTINCT page) AS pages, MAX(page) AS top_page,
                   SUM(items) FILTER (WHERE amount > 0) AS items_paid
            FROM input_data
            WHERE page IS DISTINCT FROM 'help'
            GROUP BY user_id
        """,
        features=[
            FieldSpec(name="clicks", dtype="int64"),
            FieldSpec(name="spent", dtype="float64"),
            FieldSpec(name="mean", dtype="float64"),
            FieldSpec(name="pages", dtype="int64"),
            FieldSpec(name="top_page", dtype="string"),
            FieldSpec(name="items_paid", dtype="int64"),
        ],
    )
    events = random_events(1)
    start, end = at("06:00"), at("3d 06:00")
    expected = naive_sql_rows(resolved(view), events, start, end)
    assert len(expected) > 30
    assert compute(view, events, start, end) == expected


def test_step_is_added_to_the_outermost_select_and_group_by_only():
    query = "select distinct k, (select max(x) from t group by y) as m from input_data group by k"
    assert step_grouped(query) == (
        "select distinct __t, k, (select max(x) from t group by y) as m from input_data "
        "group by __t, k"
    )


def test_a_query_without_group_by_is_refused():
    with pytest.raises(ValueError, match=r"^query: "):
        step_grouped("SELECT user_id, 1 AS x FROM input_data")


def test_the_grouping_columns_are_the_outermost_group_by_in_its_order():
    columns = ["user_id", "country", "shop_id", "amount", "ts", "__t"]
    assert grouping_columns(
        "SELECT country, shop_id, (SELECT 1 GROUP BY x) AS one FROM input_data "
        "GROUP BY `Shop_id`, input_data.country -- per shop\n HAVING COUNT(*) > 1 ORDER BY 1",
        columns,
    ) == ["shop_id", "country"]
    assert grouping_columns("SELECT 1 FROM input_data GROUP BY lower(user_id)", columns) is None
    assert grouping_columns("SELECT 1 FROM input_data GROUP BY ALL", columns) is None
    assert grouping_columns("SELECT 1 FROM input_data", columns) is None
