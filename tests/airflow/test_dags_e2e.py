"""The DAGs over the real servers: land -> compute (Spark, GX, publish) -> materialize -> export.

Given four purchases of two users, the compute DAG's hourly runs (run out of order) leave exactly
the change-only rows of DESIGN.md, and one compute over the union of their intervals leaves the
same rows: a backfill equals a single run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from jstore.config import Settings
from jstore.ingest.demo_data import ensure_topic
from jstore.lake import quality_dir
from jstore.orchestration import run_dag
from jstore.registry import Registry
from jstore.repo import FeatureRepo
from jstore.spark_submit import job_environment

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

S = datetime(2024, 5, 1, tzinfo=UTC)
H = timedelta(hours=1)
PURCHASES = [  # user, amount, event time
    ("u1", 10.0, S + timedelta(minutes=10)),
    ("u2", 5.0, S + timedelta(minutes=20)),
    ("u1", 30.0, S + timedelta(minutes=70)),
    ("u2", 7.0, S + timedelta(minutes=185)),  # at 03:05: after the computed steps
]
COLUMNS = [
    "count_1h",
    "amount_sum_1h",
    "amount_max_1h",
    "count_1d",
    "amount_sum_1d",
    "amount_avg_1d",
]
EXPECTED = [
    # the step at S has no rows: every window before it is empty, as at S - 1h
    ("u1", S + H, 1, 10.0, 10.0, 1, 10.0, 10.0),
    ("u1", S + 2 * H, 1, 30.0, 30.0, 2, 40.0, 20.0),
    ("u2", S + H, 1, 5.0, 5.0, 1, 5.0, 5.0),
    ("u2", S + 2 * H, 0, 0.0, None, 1, 5.0, 5.0),  # its 1h window drained: a row again
]


def offline_rows(settings: Settings) -> list[tuple]:
    query = sql.SQL(
        "SELECT user_id, feature_ts, {} FROM {}.{} ORDER BY user_id, feature_ts"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        sql.Identifier(settings.offline_schema),
        sql.Identifier("user_purchases__v1"),
    )
    with psycopg.connect(settings.postgres_dsn.get_secret_value()) as conn:
        return [tuple(r) for r in conn.execute(query)]


@pytest.fixture
def shop(settings: Settings, registry: Registry, example_repo: FeatureRepo, monkeypatch) -> str:
    """The example's user_purchases on a topic of its own, applied; the DAGs see these settings."""
    from kafka import KafkaProducer

    topic = f"t_{settings.project}"
    ensure_topic(settings, topic, 3)
    source = example_repo.sources["purchases"].model_copy(update={"topic": topic})
    registry.apply(
        FeatureRepo.of(example_repo.entities["user"], source, example_repo.views["user_purchases"])
    )
    for name, value in job_environment(settings).items():
        monkeypatch.setenv(name, value)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for user, amount, ts in PURCHASES:
        event = {"user_id": user, "merchant_id": "m1", "amount": amount, "category": "books"}
        event["ts"] = ts.isoformat().replace("+00:00", "Z")
        producer.send(topic, json.dumps(event).encode(), partition=0)
    producer.flush()
    producer.close()
    return topic


def xcom(run, task_id: str, key: str):
    """What a task of a DAG run pushed under `key`, from Airflow's metadata database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=key)
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


def test_dags_land_compute_materialize_and_export(
    airflow_db, shop, settings: Settings, registry: Registry, tmp_path: Path
) -> None:
    from jstore.online import OnlineStore
    from jstore.pipeline import compute
    from jstore.request import ComputeRequest

    landed = run_dag("jstore_land_purchases")
    assert xcom(landed, "recompute", "return_value") == {"runs": []}  # no late event yet
    for end in (S + 3 * H, S + H, S + 2 * H):  # a manual run computes the step ending there
        computed = run_dag("jstore_compute_user_purchases", logical_date=end)
    page = xcom(computed, "validate", "report_page")
    assert (quality_dir(settings) / page).is_file()
    for task_id in ("validate", "publish"):  # the tasks' "Data Docs" button
        link = xcom(computed, task_id, "_link_DataDocsLink")
        assert link == f"{settings.api_url}/ui/quality/{page}"
    assert offline_rows(settings) == EXPECTED
    assert registry.coverage("user_purchases", 1) == [(S, S + 3 * H)]
    runs = registry.list_runs(subject="user_purchases")
    assert sorted((r.kind, r.status) for r in runs) == [
        *[("compute", "success")] * 3,
        *[("publish", "success")] * 3,
        *[("validate", "success")] * 3,
    ]

    run_dag("jstore_materialize")
    online = OnlineStore(settings)
    view = registry.get_view("user_purchases")
    u1, u2, u3 = online.read(view, ["u1", "u2", "u3"])
    online.close()
    feature_ts, *values = json.loads(u1)  # docs/online_store_format.md
    assert feature_ts == "2024-05-01T02:00:00Z"
    assert dict(zip([f.name for f in view.features], values, strict=True))["count_1d"] == 2
    assert u2 is not None and u3 is None

    entities = tmp_path / "entities.parquet"
    pq.write_table(
        pa.table({"user_id": ["u1", "u1", "u2"], "event_timestamp": [S + H, S + 150 * H / 60, S]}),
        entities,
    )
    out = tmp_path / "training.parquet"
    conf = {"features": "user_purchases:count_1d", "entities": str(entities), "out": str(out)}
    run_dag("jstore_export_training_set", conf=conf)
    assert pq.read_table(out).column("user_purchases__count_1d").to_pylist() == [1, 2, 0]

    union = ComputeRequest.of(registry.get_view("user_purchases"), S, S + 3 * H)
    compute(settings, registry, union)  # one run over the union
    assert offline_rows(settings) == EXPECTED
