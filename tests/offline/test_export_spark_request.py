"""The Spark export's launcher: what it refuses before Spark starts, and the entity files it
hands the job (Spark reads neither CSV with the default engine's types nor nanoseconds)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jstore.errors import InputError
from jstore.export_spark import build_request
from tests.offline.conftest import T0


def _features(view, *names):
    return [(view, view.feature(n)) for n in names]


def test_the_request_carries_views_features_coverage_and_stored_tables(
    settings, card_view, tmp_path
):
    pq.write_table(pa.table({"card_id": ["c"], "event_timestamp": [T0]}), tmp_path / "e.parquet")
    coverage = {card_view.table: [(T0, T0.replace(day=2))]}
    request = build_request(
        settings,
        tmp_path / "e.parquet",
        tmp_path / "o.parquet",
        _features(card_view, "count_1d"),
        coverage,
        "export-1",
    )
    assert request.resolved() == _features(card_view, "count_1d")
    assert request.coverage == coverage
    assert request.stored == []  # never published: no table
    assert request.entities == str(tmp_path / "e.parquet")


@pytest.mark.parametrize(
    ("entities", "out", "message"),
    [
        ({"card": ["c"], "event_timestamp": [T0]}, "o.parquet", "card_id: missing join key column"),
        (
            {"card_id": ["c"], "event_timestamp": [T0], "card_daily__count_1d": [1]},
            "o.parquet",
            "card_daily__count_1d: the entity rows already have this column",
        ),
        (
            {"card_id": ["c"], "event_timestamp": [T0]},
            "o.csv",
            r"out: o.csv: the spark engine writes Parquet \(a .parquet path\)",
        ),
    ],
)
def test_bad_input_is_refused_before_spark_starts(
    settings, card_view, tmp_path, entities, out, message
):
    pq.write_table(pa.table(entities), tmp_path / "e.parquet")
    with pytest.raises(InputError, match=message):
        build_request(
            settings,
            tmp_path / "e.parquet",
            tmp_path / out,
            _features(card_view, "count_1d"),
            {},
            "export-1",
        )


def test_nanosecond_times_are_handed_to_spark_in_microseconds(settings, card_view, tmp_path):
    ns = pa.array([1_714_521_600_000_000_000], pa.timestamp("ns", "UTC"))
    pq.write_table(pa.table({"card_id": ["c"], "event_timestamp": ns}), tmp_path / "e.parquet")
    request = build_request(
        settings,
        tmp_path / "e.parquet",
        tmp_path / "o.parquet",
        _features(card_view, "count_1d"),
        {},
        "export-1",
    )
    copy = pq.read_table(request.entities)
    assert copy.schema.field("event_timestamp").type == pa.timestamp("us", "UTC")
    assert copy["event_timestamp"].to_pylist() == [T0]


def test_a_time_finer_than_a_microsecond_is_refused(settings, card_view, tmp_path):
    ns = pa.array([1_714_521_600_000_000_001], pa.timestamp("ns", "UTC"))
    pq.write_table(pa.table({"card_id": ["c"], "event_timestamp": ns}), tmp_path / "e.parquet")
    with pytest.raises(InputError, match=r"entities: e\.parquet has times finer than microseconds"):
        build_request(
            settings,
            tmp_path / "e.parquet",
            tmp_path / "o.parquet",
            _features(card_view, "count_1d"),
            {},
            "export-1",
        )


class _Launched(Exception):
    """Stops the export once the Spark job is described: what it carries is the test's."""


def test_the_spark_engine_is_handed_coverage_trimmed_by_retention(
    settings, registry, example_repo, tmp_path
):
    """Retention drops a view's old partitions, so what it dropped reads as past coverage (null)
    in both engines: the Spark job's request carries the coverage trimmed, as the default
    engine's join trims it (`OfflineStore.point_in_time_join`)."""
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from jstore.export import export_training_set
    from jstore.export_spark import ExportRequest
    from jstore.lake_fs import local_path

    kept = example_repo.views["user_purchases"].model_copy(update={"retention": timedelta(days=2)})
    registry.apply(replace(example_repo, views={**example_repo.views, "user_purchases": kept}))
    resolved = registry.get_view("user_purchases")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    registry.add_coverage("user_purchases", resolved.version, now - timedelta(days=5), now)
    entities = tmp_path / "entities.parquet"
    pq.write_table(
        pa.table(
            {"user_id": ["u1"], "event_timestamp": pa.array([now], pa.timestamp("us", "UTC"))}
        ),
        entities,
    )
    handed = []
    asked = datetime.now(UTC)

    def launch(job):
        handed.append(ExportRequest.load(local_path(job.application_args[1])))
        raise _Launched

    with pytest.raises(_Launched):
        export_training_set(
            settings,
            registry,
            entities,
            tmp_path / "out.parquet",
            ["user_purchases:count_1h"],
            engine="spark",
            launch=launch,
        )
    [(start, end)] = handed[0].coverage[resolved.table]
    assert end == now
    assert asked - timedelta(days=2) <= start <= datetime.now(UTC) - timedelta(days=2)
