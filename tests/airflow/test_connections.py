"""DAG tasks take the stores from Airflow Connections, else from the JSTORE_* settings
(jstore/connections.py).

Connections are defined the way Airflow users define them in deployments, as `AIRFLOW_CONN_<ID>`
environment variables, and read by Airflow's own `BaseHook.get_connection`.
"""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest
from airflow.sdk import Connection

from jstore.config import Settings
from jstore.connections import task_settings, with_connections
from jstore.ingest.demo_data import ensure_topic
from jstore.registry import Registry
from jstore.spark_submit import job_environment
from tests.ingest.conftest import purchase, purchases_on

CLOSED = {
    "JSTORE_POSTGRES_DSN": "postgresql://jstore:jstore@127.0.0.1:9/jstore",
    "JSTORE_REDIS_URL": "redis://127.0.0.1:9/0",
    "JSTORE_MONGO_URI": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=2000",
    "JSTORE_MONGO_DB": "not_the_registry",
    "JSTORE_KAFKA_BOOTSTRAP": "127.0.0.1:9",
}
"""The stores' settings at a port nothing listens on."""


def test_each_store_is_taken_from_its_connection_and_the_rest_kept() -> None:
    connections = {
        "jstore_postgres": Connection(
            conn_id="jstore_postgres",
            conn_type="postgres",
            host="pg.internal",
            port=5433,
            login="feature_store",
            password="p@ss/word",
            schema="features",
            extra=json.dumps({"sslmode": "require", "cursor": "dictcursor"}),
        ),
        "jstore_redis": Connection(
            conn_id="jstore_redis",
            conn_type="redis",
            host="redis.internal",
            port=6380,
            password="r-secret",
            extra=json.dumps({"db": 2, "ssl": True}),
        ),
        "jstore_mongo": Connection(
            conn_id="jstore_mongo",
            conn_type="mongo",
            host="mongo.internal",
            port=27018,
            login="registry",
            password="m-secret",
            schema="jstore_prod",
            extra=json.dumps({"authSource": "admin", "tls": True}),
        ),
    }
    base = Settings(_env_file=None)

    settings = with_connections(base, connections.get)

    assert settings.postgres_dsn.get_secret_value() == (
        "postgresql://feature_store:p%40ss%2Fword@pg.internal:5433/features?sslmode=require"
    )
    assert settings.redis_url == "rediss://:r-secret@redis.internal:6380/2"
    assert settings.mongo_uri == (
        "mongodb://registry:m-secret@mongo.internal:27018/?authSource=admin&tls=true"
    )
    assert settings.mongo_db == "jstore_prod"
    assert settings.kafka_bootstrap == base.kafka_bootstrap  # no jstore_kafka: the setting
    assert (
        settings.model_copy(
            update={
                f: getattr(base, f) for f in ("postgres_dsn", "redis_url", "mongo_uri", "mongo_db")
            }
        )
        == base
    )


def test_kafka_takes_the_providers_bootstrap_servers_else_host_and_port() -> None:
    extra = json.dumps({"bootstrap.servers": "k1:9092,k2:9092", "group.id": "x"})
    providers = Connection(conn_id="jstore_kafka", conn_type="kafka", extra=extra)
    plain = Connection(conn_id="jstore_kafka", conn_type="kafka", host="k1", port=9093)
    for conn, bootstrap in ((providers, "k1:9092,k2:9092"), (plain, "k1:9093")):
        settings = with_connections(Settings(_env_file=None), {"jstore_kafka": conn}.get)
        assert settings.kafka_bootstrap == bootstrap


def connections_of(settings: Settings) -> dict[str, str]:
    """`AIRFLOW_CONN_<ID>` variables (Airflow's JSON form) of the servers `settings` point at."""
    pg = urlparse(settings.postgres_dsn.get_secret_value())
    redis, mongo = urlparse(settings.redis_url), urlparse(settings.mongo_uri)
    kafka = {"bootstrap.servers": settings.kafka_bootstrap}
    connections = {
        "JSTORE_POSTGRES": {
            "conn_type": "postgres",
            **{"host": pg.hostname, "port": pg.port, "login": pg.username},
            **{"password": pg.password, "schema": pg.path.lstrip("/")},
        },
        "JSTORE_REDIS": {"conn_type": "redis", "host": redis.hostname, "port": redis.port},
        "JSTORE_MONGO": {
            "conn_type": "mongo",
            **{"host": mongo.hostname, "port": mongo.port, "schema": settings.mongo_db},
        },
        "JSTORE_KAFKA": {"conn_type": "kafka", "extra": kafka},
    }
    return {f"AIRFLOW_CONN_{conn_id}": json.dumps(c) for conn_id, c in connections.items()}


def run_land_task(dagbag, monkeypatch, max_records: int = 10) -> dict:
    """The land DAG's `land` task, run as its worker runs it (its callable, with its params)."""
    land = dagbag.dags["jstore_land_purchases"].get_task("land")
    context = {"params": {"max_records": max_records}}
    monkeypatch.setitem(land.python_callable.__globals__, "get_current_context", lambda: context)
    return land.python_callable()


@pytest.fixture
def purchases(settings: Settings, registry: Registry) -> str:
    """The example's `purchases` source on a topic of its own, holding two events."""
    from kafka import KafkaProducer

    topic = f"t_{settings.project}"
    ensure_topic(settings, topic, 1)
    registry.register(purchases_on(topic))
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for event in (
        purchase("u1", 10.0, "2024-05-01T00:10:00Z"),
        purchase("u2", 5.0, "2024-05-01T00:20:00Z"),
    ):
        producer.send(topic, event, partition=0)
    producer.flush()
    producer.close()
    return topic


def test_a_task_takes_the_stores_from_connections_over_closed_jstore_settings(
    dagbag, settings: Settings, registry: Registry, purchases: str, monkeypatch
) -> None:
    for name, value in {**job_environment(settings), **CLOSED, **connections_of(settings)}.items():
        monkeypatch.setenv(name, value)

    stores = task_settings()

    assert run_land_task(dagbag, monkeypatch)["rows"] == 2
    assert (stores.mongo_db, stores.kafka_bootstrap) == (
        settings.mongo_db,
        settings.kafka_bootstrap,
    )
    assert stores.postgres_dsn == settings.postgres_dsn
    assert urlparse(stores.redis_url).port == urlparse(settings.redis_url).port
    assert registry.list_runs(subject="purchases")[0].rows == 2


def test_without_connections_a_task_falls_back_to_the_jstore_settings(
    dagbag, settings: Settings, registry: Registry, purchases: str, monkeypatch
) -> None:
    for name in connections_of(settings):
        monkeypatch.delenv(name, raising=False)
    for name, value in job_environment(settings).items():
        monkeypatch.setenv(name, value)

    assert task_settings() == Settings()
    assert run_land_task(dagbag, monkeypatch)["rows"] == 2
