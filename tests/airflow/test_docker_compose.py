"""docker-compose.yaml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from jstore.config import Settings

ROOT = Path(__file__).resolve().parents[2]
ONE_SHOT = {"airflow-init"}
"""Services that run to completion, so have no healthcheck; others depend on their success."""


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_the_stack_has_every_component(compose: dict) -> None:
    assert set(compose["services"]) == {
        "kafka",
        "timescaledb",
        "redis",
        "mongodb",
        "airflow-postgres",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "jstore-api",
        "spark-master",
        "spark-worker",
    }
    assert compose["services"]["spark-master"]["profiles"] == ["spark"]


def test_images_are_pinned_to_a_version(compose: dict) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert re.fullmatch(r"[a-z0-9./_-]+:[0-9][\w.-]*", image), f"{name}: {image}"
    upstream = {s["image"].split(":")[0] for s in compose["services"].values()}
    assert {"apache/kafka", "timescale/timescaledb", "redis", "mongo", "postgres"} <= upstream


def test_every_service_is_health_checked_or_waited_for(compose: dict) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert "healthcheck" not in service
        else:
            assert service["healthcheck"]["test"], name
        for dependency, how in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert how == {"condition": expected}, f"{name} -> {dependency}"


def test_jstore_variables_are_settings_fields(compose: dict) -> None:
    fields = {f"JSTORE_{name.upper()}" for name in Settings.model_fields}
    seen = set()
    for service in compose["services"].values():
        names = {n for n in service.get("environment", {}) if n.startswith("JSTORE_")}
        assert names <= fields, names - fields
        seen |= names
    assert {"JSTORE_MONGO_URI", "JSTORE_POSTGRES_DSN", "JSTORE_REDIS_URL"} <= seen


def test_airflow_runs_the_project_dags_with_spark_default(compose: dict) -> None:
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/jstore/dags"
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/jstore/plugins"
    assert env["AIRFLOW_CONN_SPARK_DEFAULT"].startswith('{"conn_type": "spark"')
    assert env["JSTORE_REGISTRY_SNAPSHOT"] == "/data/registry_snapshot.json"


def test_dockerfile_installs_java_and_the_locked_packages() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11" in dockerfile
    assert "openjdk-17-jre-headless" in dockerfile
    assert "uv sync --frozen --all-extras --no-dev" in dockerfile
    for folder in ("jstore", "jobs", "dags", "plugins", "serving"):
        assert f"COPY --chown=jstore {folder} ./{folder}" in dockerfile
