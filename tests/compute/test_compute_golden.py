"""Golden cases of windowed features, computed by hand: given these events -> exactly these rows.

Times are 2024-05-01 unless a day is given (`at("2d 10:00")`); the step is 1h, so every
midnight UTC is a checkpoint (checkpoint_period = lcm(1h, 1 day) = 1 day), where every entity
whose value is not the empty one gets a row, changed or not.
"""

from __future__ import annotations

import pytest

from jstore.model import Aggregation, WindowedFeatureView
from tests.compute.windowing_helpers import at, both_evaluations

pytestmark = [pytest.mark.spark, both_evaluations]


def view(*aggregations: Aggregation, entities=("user",)) -> WindowedFeatureView:
    return WindowedFeatureView(
        name="v",
        entities=list(entities),
        source="clicks",
        step="1h",
        aggregations=list(aggregations),
    )


def test_count_window_edges_and_the_event_leaving(compute):
    """An event at exactly t - window is inside the window at t; one at exactly t is not."""
    v = view(Aggregation(function="count", windows=["1h", "2h"]))
    events = [{"user_id": "u1", "ts": at("10:00")}, {"user_id": "u1", "ts": at("11:00")}]
    rows = compute(v, events, at("09:00"), at("15:00"))
    assert rows == [
        ("u1", at("11:00"), 1, 1),
        ("u1", at("12:00"), 1, 2),
        ("u1", at("13:00"), 0, 1),
        ("u1", at("14:00"), 0, 0),
    ]


def test_one_event_then_its_window_drains_to_the_empty_values(compute):
    """count 0 and sum 0 once the event has left; avg, min, max and last are null."""
    v = view(
        Aggregation(function="count", windows=["1h"]),
        Aggregation(function="sum", column="amount", windows=["1h"]),
        Aggregation(function="avg", column="amount", windows=["1h"]),
        Aggregation(function="min", column="amount", windows=["1h"]),
        Aggregation(function="max", column="amount", windows=["1h"]),
        Aggregation(function="last", column="amount", windows=["1h"]),
    )
    events = [{"user_id": "u1", "amount": 2.5, "ts": at("10:59")}]
    assert compute(v, events, at("00:00"), at("2d 00:00")) == [
        ("u1", at("11:00"), 1, 2.5, 2.5, 2.5, 2.5, 2.5),
        ("u1", at("12:00"), 0, 0.0, None, None, None, None),
    ]


def test_avg_min_max_last_and_null_values(compute):
    """Null values are skipped (count without a column counts rows); last is the latest value,
    ties on event time broken by partition then offset."""
    v = view(
        Aggregation(function="count", windows=["2h"]),
        Aggregation(function="count", column="amount", windows=["2h"]),
        Aggregation(function="avg", column="amount", windows=["2h"]),
        Aggregation(function="min", column="amount", windows=["2h"]),
        Aggregation(function="max", column="amount", windows=["2h"]),
        Aggregation(function="last", column="amount", windows=["2h"]),
    )
    events = [
        {"user_id": "u1", "amount": 4.0, "ts": at("10:10"), "_offset": 7},
        {"user_id": "u1", "amount": 1.0, "ts": at("10:10"), "_offset": 3},
        {"user_id": "u1", "amount": None, "ts": at("10:50"), "_offset": 9},
        {"user_id": "u1", "amount": 2.0, "ts": at("11:20"), "_offset": 2, "_partition": 1},
    ]
    assert compute(v, events, at("10:00"), at("14:00")) == [
        ("u1", at("11:00"), 3, 2, 2.5, 1.0, 4.0, 4.0),
        ("u1", at("12:00"), 4, 3, 7 / 3, 1.0, 4.0, 2.0),
        ("u1", at("13:00"), 1, 1, 2.0, 2.0, 2.0, 2.0),
    ]


def test_sum_of_integers_stays_integer_and_windows_differ(compute):
    v = view(Aggregation(function="sum", column="items", windows=["1h", "3h"]))
    events = [
        {"user_id": "u1", "items": 2, "ts": at("10:00")},
        {"user_id": "u1", "items": 5, "ts": at("11:30")},
    ]
    assert compute(v, events, at("10:00"), at("16:00")) == [
        ("u1", at("11:00"), 2, 2),
        ("u1", at("12:00"), 5, 7),
        ("u1", at("13:00"), 0, 7),
        ("u1", at("14:00"), 0, 5),
        ("u1", at("15:00"), 0, 0),
    ]


def test_distinct_counts(compute):
    v = view(Aggregation(function="count_distinct", column="page", windows=["1h", "1d"]))
    events = [
        {"user_id": "u1", "page": "home", "ts": at("10:05")},
        {"user_id": "u1", "page": "cart", "ts": at("10:06")},
        {"user_id": "u1", "page": "home", "ts": at("10:07")},
        {"user_id": "u1", "page": None, "ts": at("10:08")},
        {"user_id": "u1", "page": "cart", "ts": at("11:00")},
    ]
    assert compute(v, events, at("10:00"), at("13:00")) == [
        ("u1", at("11:00"), 2, 2),
        ("u1", at("12:00"), 1, 2),
    ]


def test_two_entities_are_independent(compute):
    v = view(Aggregation(function="count", windows=["1h"]))
    events = [
        {"user_id": "u1", "ts": at("10:00")},
        {"user_id": "u2", "ts": at("10:30")},
        {"user_id": "u2", "ts": at("11:30")},
    ]
    assert compute(v, events, at("10:00"), at("14:00")) == [
        ("u1", at("11:00"), 1),
        ("u1", at("12:00"), 0),
        ("u2", at("11:00"), 1),
        ("u2", at("13:00"), 0),
    ]


def test_composite_keys(compute):
    v = view(Aggregation(function="sum", column="amount", windows=["1h"]), entities=["shop"])
    events = [
        {"country": "fr", "shop_id": 1, "amount": 1.5, "ts": at("10:00")},
        {"country": "fr", "shop_id": 2, "amount": 2.0, "ts": at("10:00")},
        {"country": "de", "shop_id": 1, "amount": 4.0, "ts": at("10:00")},
        {"country": "fr", "shop_id": 1, "amount": 0.5, "ts": at("10:59")},
        {"country": None, "shop_id": 1, "amount": 9.0, "ts": at("10:00")},
    ]
    assert compute(v, events, at("10:00"), at("12:00")) == [
        ("de", 1, at("11:00"), 4.0),
        ("fr", 1, at("11:00"), 2.0),
        ("fr", 2, at("11:00"), 2.0),
    ]


def test_a_kafka_record_landed_twice_counts_once_but_table_rows_all_count(compute):
    v = view(Aggregation(function="count", windows=["1h"]))
    kafka = {"user_id": "u1", "ts": at("10:00"), "_partition": 0, "_offset": 5}
    table_row = {"user_id": "u2", "ts": at("10:00"), "_partition": None, "_offset": None}
    events = [kafka, dict(kafka, ts=at("10:00")), table_row, dict(table_row)]
    assert compute(v, events, at("11:00"), at("12:00")) == [
        ("u1", at("11:00"), 1),
        ("u2", at("11:00"), 2),
    ]


def test_lookback_reads_events_before_the_interval(compute):
    """[12:00, 13:00) sees the event of 09:30 in its 3h window, and knows that at 11:00 the
    value was the same, so it writes no row; the event leaving at 13:00 is outside."""
    v = view(Aggregation(function="count", windows=["3h"]))
    events = [{"user_id": "u1", "ts": at("09:30")}]
    assert compute(v, events, at("12:00"), at("13:00")) == []
    assert compute(v, events, at("13:00"), at("14:00")) == [("u1", at("13:00"), 0)]


def test_a_value_stable_across_midnight_gets_a_row_at_the_checkpoint(compute):
    """2d 00:00 repeats the value of 23:00: unchanged, but a checkpoint and not empty."""
    v = view(
        Aggregation(function="count", windows=["1h", "6h"]),
        Aggregation(function="last", column="amount", windows=["6h"]),
    )
    events = [{"user_id": "u1", "amount": 4.0, "ts": at("21:30")}]
    assert compute(v, events, at("20:00"), at("2d 06:00")) == [
        ("u1", at("22:00"), 1, 1, 4.0),
        ("u1", at("23:00"), 0, 1, 4.0),
        ("u1", at("2d 00:00"), 0, 1, 4.0),
        ("u1", at("2d 04:00"), 0, 0, None),
    ]


def test_an_empty_value_gets_no_checkpoint_row(compute):
    """u2 drained at 23:00 and u3's only event (22:15) has no amount: both are empty at the
    2d 00:00 checkpoint, so neither gets a row there (absent means empty)."""
    v = view(
        Aggregation(function="count", column="amount", windows=["1h", "6h"]),
        Aggregation(function="sum", column="amount", windows=["6h"]),
        Aggregation(function="last", column="amount", windows=["6h"]),
    )
    events = [
        {"user_id": "u2", "amount": 2.0, "ts": at("16:30")},
        {"user_id": "u3", "amount": None, "ts": at("22:15")},
    ]
    assert compute(v, events, at("16:00"), at("2d 02:00")) == [
        ("u2", at("17:00"), 1, 1, 2.0, 2.0),
        ("u2", at("18:00"), 0, 1, 2.0, 2.0),
        ("u2", at("23:00"), 0, 0, 0.0, None),
    ]


def test_events_only_before_the_interval_still_give_the_checkpoint_row(compute):
    """The reported bug: 4 events (3 pages) on day 1, windows of 2 days, so the value is the same
    from 1d 12:00 to 3d 10:00. An interval starting after 12:00 has no change, yet readers must
    not see count 0: the checkpoint 2d 00:00 carries the value."""
    v = view(
        Aggregation(function="count", windows=["2d"]),
        Aggregation(function="count_distinct", column="page", windows=["2d"]),
    )
    events = [
        {"user_id": "u1", "page": "home", "ts": at("10:05")},
        {"user_id": "u1", "page": "cart", "ts": at("10:20")},
        {"user_id": "u1", "page": "home", "ts": at("10:40")},
        {"user_id": "u1", "page": "pay", "ts": at("11:10")},
    ]
    assert compute(v, events, at("2d 00:00"), at("2d 06:00")) == [("u1", at("2d 00:00"), 4, 3)]
    assert compute(v, events, at("2d 01:00"), at("2d 06:00")) == []
    assert compute(v, events, at("12:00"), at("2d 06:00")) == [
        ("u1", at("12:00"), 4, 3),
        ("u1", at("2d 00:00"), 4, 3),
    ]


def test_unaligned_interval_is_refused_naming_the_field(compute):
    v = view(Aggregation(function="count", windows=["1h"]))
    with pytest.raises(ValueError, match=r"^start: .* not aligned to the step 1h"):
        compute(v, [], at("10:30"), at("12:00"))
    with pytest.raises(ValueError, match=r"^end: .* not aligned"):
        compute(v, [], at("10:00"), at("12:01"))


def test_the_worked_example_of_docs_compute(compute):
    v = view(
        Aggregation(function="count", windows=["1h", "2h"]),
        Aggregation(function="sum", column="amount", windows=["1h", "2h"]),
    )
    events = [
        {"user_id": "u1", "amount": 3.0, "ts": at("10:00")},
        {"user_id": "u1", "amount": 5.0, "ts": at("11:30")},
    ]
    assert compute(v, events, at("10:00"), at("15:00")) == [
        ("u1", at("11:00"), 1, 1, 3.0, 3.0),
        ("u1", at("12:00"), 1, 2, 5.0, 8.0),
        ("u1", at("13:00"), 0, 1, 0.0, 5.0),
        ("u1", at("14:00"), 0, 0, 0.0, 0.0),
    ]
    assert compute(v, events, at("12:00"), at("15:00")) == [
        ("u1", at("12:00"), 1, 2, 5.0, 8.0),
        ("u1", at("13:00"), 0, 1, 0.0, 5.0),
        ("u1", at("14:00"), 0, 0, 0.0, 0.0),
    ]
    with_7d = view(
        Aggregation(function="count", windows=["1h", "2h", "7d"]),
        Aggregation(function="sum", column="amount", windows=["1h", "2h", "7d"]),
    )
    assert compute(with_7d, events, at("2d 00:00"), at("2d 06:00")) == [
        ("u1", at("2d 00:00"), 0, 0, 2, 0.0, 0.0, 8.0),
    ]
    assert compute(with_7d, events, at("8d 00:00"), at("9d 06:00")) == [
        ("u1", at("8d 00:00"), 0, 0, 2, 0.0, 0.0, 8.0),
        ("u1", at("8d 11:00"), 0, 0, 1, 0.0, 0.0, 5.0),
        ("u1", at("8d 12:00"), 0, 0, 0, 0.0, 0.0, 0.0),
    ]
