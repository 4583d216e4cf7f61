"""When the semi-join to the changing entities is left out: only where it could drop no entity
with a row (the oracle tests compare the rows of both paths with the naive oracle)."""

from __future__ import annotations

import pytest

from jobs.changing_entities import drops_no_entity, tiles_of_changing_entities
from jstore.model import Aggregation, WindowedFeatureView
from tests.compute.windowing_helpers import at, resolved


def view_with(windows: list[str]):
    return resolved(
        WindowedFeatureView(
            name="clicks_per_user",
            entities=["user"],
            source="clicks",
            step="1h",
            aggregations=[Aggregation(function="count", windows=windows)],
        )
    )


@pytest.mark.parametrize(
    ("windows", "start", "end", "drops_none"),
    [
        # a daily run with a 30-day window: the midnight checkpoint keeps every entity with a
        # tile in the 30 days before it, the 1h window the day's
        (["1h", "1d", "30d"], "00:00", "2d 00:00", True),
        (["1h", "1d", "30d"], "12:00", "2d 12:00", True),  # its checkpoint at 2d 00:00
        (["1h", "1d", "30d"], "00:00", "01:00", True),  # an hourly run at the checkpoint
        # an hourly run in the day: only the entities active in its hour and at its windows'
        # far edges have a row
        (["1h", "1d", "30d"], "13:00", "14:00", False),
        (["1h", "3h"], "13:00", "14:00", False),  # a tile at 10:00 alone has no row at 13:00
        (["1h", "3h"], "13:00", "16:00", True),  # as long as the longest window
        (["1h", "3h"], "00:00", "01:00", True),
    ],
)
def test_the_semi_join_is_left_out_where_candidates_cover_the_read_range(
    windows, start, end, drops_none
):
    assert drops_no_entity(view_with(windows), at(start), at(end)) is drops_none


def test_a_daily_run_windows_the_tiles_it_was_given():
    tiles = object()  # no Spark plan is built around them

    assert (
        tiles_of_changing_entities(tiles, view_with(["1h", "30d"]), at("00:00"), at("2d 00:00"))
        is tiles
    )
