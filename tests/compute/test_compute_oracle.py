"""The tiled Spark path against the naive oracle on seeded random events (with nulls and
duplicates), for every function and several windows, across midnight checkpoints; and split
intervals (one of them a lone checkpoint step) against one run.

Amounts are multiples of 0.25, so sums are exact in any order and equality is exact.
"""

from __future__ import annotations

import random
from datetime import timedelta
from itertools import pairwise

import pytest

from jstore.model import Aggregation, WindowedFeatureView
from tests.compute.oracle import naive_rows
from tests.compute.windowing_helpers import at, both_evaluations, resolved

pytestmark = pytest.mark.spark


def random_events(seed: int, n: int = 150) -> list[dict]:
    rng = random.Random(seed)
    first = at("00:00")

    def maybe(value):
        return None if rng.random() < 0.2 else value

    events = []
    for i in range(n):
        minute = rng.randrange(0, 60 * 60) if rng.random() < 0.9 else 60 * rng.randrange(0, 60)
        event = {
            "user_id": rng.choice(["u1", "u2", "u3", "u4", None] if i % 10 else ["u1"]),
            "amount": maybe(rng.randint(-40, 40) / 4),
            "items": maybe(rng.randint(0, 9)),
            "page": maybe(rng.choice(["home", "cart", "pay", "help", "faq", "blog"])),
            "ts": first + timedelta(minutes=minute),
            "_partition": i % 2,
            "_offset": i,
        }
        events.append(event)
        if rng.random() < 0.1:
            events.append(dict(event))
    return events


def every_function(step: str, windows: list[str]) -> WindowedFeatureView:
    aggregations = [
        Aggregation(function="count", windows=windows),
        Aggregation(function="count", column="items", windows=windows),
        Aggregation(function="sum", column="amount", windows=windows),
        Aggregation(function="sum", column="items", windows=windows),
        Aggregation(function="avg", column="amount", windows=windows),
        Aggregation(function="min", column="amount", windows=windows),
        Aggregation(function="max", column="items", windows=windows),
        Aggregation(function="max", column="page", windows=windows),
        Aggregation(function="last", column="amount", windows=windows),
        Aggregation(function="last", column="page", windows=windows),
        Aggregation(function="count_distinct", column="page", windows=windows),
    ]
    return WindowedFeatureView(
        name="every", entities=["user"], source="clicks", step=step, aggregations=aggregations
    )


@both_evaluations
@pytest.mark.parametrize(
    ("seed", "step", "windows", "start", "end"),
    [
        (1, "1h", ["1h", "3h", "1d"], "06:00", "3d 06:00"),
        (2, "2h", ["2h", "6h"], "06:00", "3d 06:00"),
        (3, "30m", ["30m", "2h", "5h"], "06:00", "3d 06:00"),
        # checkpoint period lcm(5h, 1 day) = 5 days: 2d 00:00 is one, 1d and 3d 00:00 no step
        (5, "5h", ["5h", "10h", "40h"], "04:00", "3d 21:00"),
    ],
)
def test_spark_matches_the_naive_oracle(compute, seed, step, windows, start, end):
    view = every_function(step, windows)
    events = random_events(seed)
    start, end = at(start), at(end)
    expected = naive_rows(resolved(view), events, start, end)
    assert len(expected) > 30
    assert compute(view, events, start, end) == expected


def test_split_intervals_computed_in_any_order_give_the_rows_of_one_run(compute):
    view = every_function("1h", ["1h", "3h", "1d"])
    events = random_events(4)
    cuts = [at("06:00"), at("13:00"), at("2d 00:00"), at("2d 01:00"), at("3d 06:00")]
    pieces = list(pairwise(cuts))
    split = [row for s, e in reversed(pieces) for row in compute(view, events, s, e)]
    assert sorted(split) == compute(view, events, cuts[0], cuts[-1])
