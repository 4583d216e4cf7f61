"""The extract replacement rule, on file names alone: widen over every overlapped interval."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jstore.config import Settings
from jstore.ingest.extract import ExtractError, plan_extract, stamp
from jstore.lake import landing_partition


def at(day: int) -> datetime:
    return datetime(2024, 5, day, tzinfo=UTC)


def landed_extract(settings: Settings, start: datetime, end: datetime) -> str:
    folder = landing_partition(settings, "customers", start.date())
    folder.mkdir(parents=True, exist_ok=True)
    name = f"extract-{stamp(start)}-{stamp(end)}-00000.parquet"
    (folder / name).write_bytes(b"")
    return name


def test_an_extract_widens_over_every_interval_it_overlaps(settings: Settings) -> None:
    first = landed_extract(settings, at(1), at(3))
    second = landed_extract(settings, at(4), at(6))
    landed_extract(settings, at(8), at(9))

    plan = plan_extract(settings, "customers", at(2), at(5))

    assert (plan.start, plan.end) == (at(1), at(6))
    assert sorted(p.name for p in plan.replaces) == [first, second]


def test_intervals_that_only_touch_stay_apart(settings: Settings) -> None:
    landed_extract(settings, at(1), at(3))
    landed_extract(settings, at(4), at(6))

    plan = plan_extract(settings, "customers", at(3), at(4))

    assert (plan.start, plan.end, plan.replaces) == (at(3), at(4), [])


def test_a_chain_of_overlaps_is_followed(settings: Settings) -> None:
    landed_extract(settings, at(1), at(3))
    landed_extract(settings, at(2), at(5))  # overlapping intervals from before this rule
    plan = plan_extract(settings, "customers", at(1), at(2))
    assert (plan.start, plan.end, len(plan.replaces)) == (at(1), at(5), 2)


def test_empty_or_sub_second_intervals_are_refused(settings: Settings) -> None:
    with pytest.raises(ExtractError, match=r"end: 2024-05-01T00:00:00\+00:00 must be after"):
        plan_extract(settings, "customers", at(1), at(1))
    with pytest.raises(ExtractError, match=r"start: .* must be a whole second"):
        plan_extract(settings, "customers", at(1).replace(microsecond=5), at(2))
