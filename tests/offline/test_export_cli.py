"""`jstore export`, `jstore validate`, `jstore publish`: training sets from files, staged runs
validated and published by name (never published unvalidated)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.factories import stage_rows, validate_and_publish
from tests.offline.conftest import HOUR, T0

JSTORE = str(Path(sys.executable).parent / "jstore")


def _jstore(settings, *args):
    env = {
        **os.environ,
        "JSTORE_MONGO_DB": settings.mongo_db,
        "JSTORE_OFFLINE_SCHEMA": settings.offline_schema,
        "JSTORE_LAKE_URI": settings.lake_uri,
        "JSTORE_REGISTRY_SNAPSHOT": str(settings.registry_snapshot),
        "JSTORE_PROJECT": settings.project,
    }
    return subprocess.run([JSTORE, *args], env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def published(settings, registry, example_repo):
    """user_purchases: u1 bought at 00:xx (row at 01:00), covered [00:00, 03:00)."""
    registry.apply(example_repo)
    view = registry.get_view("user_purchases")
    row = {"user_id": "007", "feature_ts": T0 + HOUR, "count_1h": 1, "amount_sum_1d": 12.5}
    staged = stage_rows(settings, view, [row], T0, T0 + 3 * HOUR, "compute-1")
    validate_and_publish(settings, registry, staged)
    return view


ENTITIES_CSV = (
    "user_id,event_timestamp,label\n"
    "007,2024-05-01T00:30:00Z,0\n"
    "007,2024-05-01T01:00:00Z,1\n"
    "008,2024-05-01T02:00:00Z,0\n"
    "007,2024-05-01T03:00:00Z,1\n"
)
EXPECTED = [
    {
        "user_id": "007",
        "label": 0,
        "user_purchases__count_1h": 0,
        "user_purchases__amount_sum_1d": 0.0,
    },
    {
        "user_id": "007",
        "label": 1,
        "user_purchases__count_1h": 1,
        "user_purchases__amount_sum_1d": 12.5,
    },
    {
        "user_id": "008",
        "label": 0,
        "user_purchases__count_1h": 0,
        "user_purchases__amount_sum_1d": 0.0,
    },
    {
        "user_id": "007",
        "label": 1,
        "user_purchases__count_1h": None,
        "user_purchases__amount_sum_1d": None,
    },
]
REFS = "user_purchases:count_1h,user_purchases:amount_sum_1d"


@pytest.mark.parametrize(
    "engine",
    [
        "default",
        # The Spark job writes a Parquet folder (part files in entity-row order) and counts the
        # rows past the coverage as the default engine does.
        pytest.param("spark", marks=pytest.mark.spark),
    ],
)
def test_export_csv_to_parquet(settings, published, tmp_path, engine):
    (tmp_path / "entities.csv").write_text(ENTITIES_CSV)
    done = _jstore(
        settings,
        "export",
        "--engine",
        engine,
        "--features",
        REFS,
        "--entities",
        str(tmp_path / "entities.csv"),
        "--out",
        str(tmp_path / "train.parquet"),
    )
    assert done.returncode == 0, done.stderr
    assert "4 rows x 2 features" in done.stdout
    assert "user_purchases__v1: 1 rows past the published coverage" in done.stdout
    table = pq.read_table(tmp_path / "train.parquet")
    assert table.drop_columns(["event_timestamp"]).to_pylist() == EXPECTED
    assert table["event_timestamp"].to_pylist()[0] == "2024-05-01T00:30:00Z"


def test_export_parquet_to_csv(settings, published, tmp_path):
    entities = pacsv.read_csv(
        pa.py_buffer(ENTITIES_CSV.encode()),
        convert_options=pacsv.ConvertOptions(column_types={"user_id": pa.string()}),
    )
    pq.write_table(entities, tmp_path / "entities.parquet")
    done = _jstore(
        settings,
        "export",
        "--features",
        REFS,
        "--entities",
        str(tmp_path / "entities.parquet"),
        "--out",
        str(tmp_path / "train.csv"),
    )
    assert done.returncode == 0, done.stderr
    back = pacsv.read_csv(
        tmp_path / "train.csv",
        convert_options=pacsv.ConvertOptions(column_types={"user_id": pa.string()}),
    )
    assert back.drop_columns(["event_timestamp"]).to_pylist() == EXPECTED


def test_the_spark_engine_refuses_a_csv_out_in_one_line(settings, published, tmp_path):
    (tmp_path / "e.csv").write_text(ENTITIES_CSV)
    done = _jstore(
        settings,
        "export",
        "--engine",
        "spark",
        "--features",
        REFS,
        "--entities",
        str(tmp_path / "e.csv"),
        "--out",
        str(tmp_path / "o.csv"),
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "jstore: out: o.csv: the spark engine writes Parquet (a .parquet path)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--features", "user_purchases:nope"], "has no feature 'nope"),
        (["--features", "nope:count_1h"], "unknown feature view 'nope'"),
        (["--features", "count_1h"], "features.0: 'count_1h' is not a feature reference"),
        ([], "features: give either feature references or a service"),
    ],
)
def test_export_refuses_bad_features_in_one_line(settings, published, tmp_path, args, message):
    (tmp_path / "e.csv").write_text(ENTITIES_CSV)
    done = _jstore(
        settings,
        "export",
        *args,
        "--entities",
        str(tmp_path / "e.csv"),
        "--out",
        str(tmp_path / "o.csv"),
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("user,event_timestamp\n1,2024-05-01T00:00:00Z\n", "user_id: missing join key column"),
        ("user_id,ts\n1,2024-05-01T00:00:00Z\n", "event_timestamp: missing column"),
        ("user_id,event_timestamp\n1,May 1st\n", "event_timestamp: not ISO-8601"),
    ],
)
def test_export_refuses_bad_entity_files(settings, published, tmp_path, csv, message):
    (tmp_path / "e.csv").write_text(csv)
    done = _jstore(
        settings,
        "export",
        "--features",
        REFS,
        "--entities",
        str(tmp_path / "e.csv"),
        "--out",
        str(tmp_path / "o.csv"),
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_publish_cli_publishes_a_staged_run_by_id(settings, registry, example_repo):
    registry.apply(example_repo)
    view = registry.get_view("merchant_sales")
    row = {"merchant_id": "m1", "feature_ts": T0, "count_1d": 3}
    stage_rows(settings, view, [row], T0, T0 + 24 * HOUR, "manual-1")
    unvalidated = _jstore(settings, "publish", "merchant_sales", "--run-id", "manual-1")
    assert unvalidated.returncode == 2
    assert "run_id: staged run manual-1 of merchant_sales v1 has no successful validation" in (
        unvalidated.stderr
    )
    assert registry.coverage("merchant_sales", 1) == []
    checked = _jstore(settings, "validate", "merchant_sales", "--run-id", "manual-1")
    assert checked.returncode == 0, checked.stderr
    assert "merchant_sales v1 run manual-1: 1 rows passed" in checked.stdout
    done = _jstore(settings, "publish", "merchant_sales", "--run-id", "manual-1")
    assert done.returncode == 0, done.stderr
    assert "1 rows published from run manual-1" in done.stdout
    assert registry.coverage("merchant_sales", 1) == [(T0, T0 + 24 * HOUR)]
    missing = _jstore(settings, "publish", "merchant_sales", "--run-id", "nope")
    assert missing.returncode == 2
    assert "is not a complete staged run" in missing.stderr
