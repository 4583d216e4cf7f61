"""Schedules and params of the DAGs, without Airflow: `jstore.orchestration`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jstore.durations import parse_duration
from jstore.orchestration import (
    DEFAULT_START,
    ExportParams,
    asset_uri,
    extract_schedule,
    load_snapshot,
    run_interval,
    step_cron,
)
from tests.airflow.dag_inputs import snapshot_of

HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("step", "cron"),
    [
        ("1m", "* * * * *"),
        ("15m", "*/15 * * * *"),
        ("30m", "*/30 * * * *"),
        ("1h", "0 * * * *"),
        ("6h", "0 */6 * * *"),
        ("12h", "0 */12 * * *"),
        ("1d", "0 0 * * *"),
        ("90s", None),
        ("7m", None),
        ("90m", None),
        ("5h", None),
        ("2d", None),
        ("7d", None),
    ],
)
def test_a_step_is_a_cron_only_when_cron_fires_on_every_utc_step(step: str, cron) -> None:
    assert step_cron(parse_duration(step)) == cron


def test_asset_uri_names_project_and_view() -> None:
    assert asset_uri("shop", "user_purchases") == "jstore://shop/user_purchases"


def test_extract_follows_the_finest_view_step_from_the_earliest_start(example_repo) -> None:
    snapshot = snapshot_of(example_repo)
    assert extract_schedule(snapshot, "customers") == (timedelta(hours=1), DEFAULT_START)
    assert extract_schedule(snapshot, "purchases") == (
        timedelta(hours=1),
        datetime(2024, 5, 1, tzinfo=UTC),
    )


def test_a_missing_or_broken_snapshot_is_none(tmp_path: Path) -> None:
    assert load_snapshot(tmp_path / "absent.json") is None
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert load_snapshot(broken) is None


def test_export_params_take_features_or_a_service() -> None:
    files = {"entities": "e.parquet", "out": "o.parquet"}
    assert ExportParams(features="a:x, b:y", **files).feature_refs() == ["a:x", "b:y"]
    assert ExportParams(service="fraud_v1", **files).feature_refs() is None
    for bad in ({}, {"features": "a:x", "service": "fraud_v1"}):
        with pytest.raises(ValueError, match=r"^features: give either"):
            ExportParams(**bad, **files).feature_refs()


def test_a_run_interval_from_airflow_is_plain_datetimes_that_align() -> None:
    """Airflow passes pendulum datetimes; the interval check must work on what it gets."""
    import pendulum

    from jstore.durations import is_aligned

    start, end = run_interval(
        {}, pendulum.datetime(2024, 5, 1), pendulum.datetime(2024, 5, 1, 1), HOUR
    )
    assert (type(start), type(end)) == (datetime, datetime)
    assert (start, end) == (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 1, 1, tzinfo=UTC))
    assert is_aligned(end, timedelta(hours=1))


def test_a_run_interval_is_the_data_interval_unless_params_name_ends() -> None:
    s, e = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 1, 1, tzinfo=UTC)
    assert run_interval({"start": None, "end": None}, s, e, HOUR) == (s, e)
    wide = {"start": "2024-04-29T00:00:00Z", "end": "2024-05-01T00:00:00Z"}
    assert run_interval(wide, s, e, HOUR) == (datetime(2024, 4, 29, tzinfo=UTC), s)
    assert run_interval(wide, None, None, HOUR) == (datetime(2024, 4, 29, tzinfo=UTC), s)


NOW = datetime(2024, 5, 3, 10, 17, 42, tzinfo=UTC)


def test_a_manual_run_without_params_or_data_interval_computes_the_latest_complete_step() -> None:
    assert run_interval({"start": None, "end": None}, None, None, HOUR, NOW) == (
        datetime(2024, 5, 3, 9, tzinfo=UTC),
        datetime(2024, 5, 3, 10, tzinfo=UTC),
    )
    assert run_interval({}, None, None, timedelta(days=1), NOW) == (
        datetime(2024, 5, 2, tzinfo=UTC),
        datetime(2024, 5, 3, tzinfo=UTC),
    )


def test_the_latest_step_is_the_one_before_the_run_was_triggered_even_from_pendulum() -> None:
    """A retry an hour later computes the same step: `now` is the run's run_after."""
    import pendulum

    triggered = pendulum.datetime(2024, 5, 3, 10, 17, 42)
    assert run_interval({}, None, None, HOUR, triggered) == (
        datetime(2024, 5, 3, 9, tzinfo=UTC),
        datetime(2024, 5, 3, 10, tzinfo=UTC),
    )


def test_a_manual_run_with_one_end_takes_the_other_from_the_latest_step() -> None:
    """Only `start`: up to the last boundary before now; only `end`: the one step before it."""
    since = {"start": "2024-05-01T00:00:00Z"}
    assert run_interval(since, None, None, HOUR, NOW) == (
        datetime(2024, 5, 1, tzinfo=UTC),
        datetime(2024, 5, 3, 10, tzinfo=UTC),
    )
    until = {"end": "2024-05-02T00:00:00+00:00"}
    assert run_interval(until, None, None, HOUR, NOW) == (
        datetime(2024, 5, 1, 23, tzinfo=UTC),
        datetime(2024, 5, 2, tzinfo=UTC),
    )


def test_a_param_that_is_no_timestamp_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^end: 'tomorrow' is not an ISO-8601 timestamp"):
        run_interval({"end": "tomorrow"}, None, None, HOUR, NOW)
