"""Golden cases of windowed features, computed by hand: given these events -> exactly these rows.

Times are 2024-05-01 unless a day is given (`at("2d 10:00")`); the step is 1h.
"""

from __future__ import annotations

import pytest

from jstore.model import Aggregation, WindowedFeatureView
from tests.compute.windowing_helpers import at

pytestmark = pytest.mark.spark


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
