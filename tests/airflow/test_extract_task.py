"""The extract DAG's task over the real servers: Airflow's SparkSubmitOperator, on the
`spark_default` connection, submits the job the CLI's launcher submits, and a table in a
database of its own, named by an Airflow Connection, lands exactly; its password appears in no
log line of the task (Airflow's, spark-submit's or Spark's).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest

from jstore.config import Settings
from jstore.ingest.landing import read_landing
from jstore.ingest.table_database import SOURCE_DSN_ENV
from jstore.registry import Registry
from jstore.spark_submit import job_environment
from tests.ingest.test_extract_database import (  # noqa: F401 (crm: a fixture)
    Database,
    airflow_connection_env,
    at,
    crm,
    crm_customers,
    insert,
)

pytestmark = [pytest.mark.e2e, pytest.mark.spark]


def test_the_extract_task_submits_through_spark_default_and_lands_exactly(
    airflow_db,
    settings: Settings,
    registry: Registry,
    crm: Database,  # noqa: F811 (the fixture imported above)
    monkeypatch,
    caplog,
    capfd,
) -> None:
    from dags.jstore_dags import ExtractOperator

    conn_id = f"crm_{uuid.uuid4().hex[:6]}"
    for name, value in job_environment(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", airflow_connection_env(crm))
    source = crm_customers(connection=conn_id)
    registry.register(source)
    insert(crm, [("u1", "gold", at(1, 1)), ("u2", "gold", at(1, 2, 30)), ("u3", "gold", at(1, 3))])
    task = ExtractOperator(task_id="extract", source=source.name, step=timedelta(hours=1))
    params = {"start": at(1).isoformat(), "end": at(1, 3).isoformat()}
    caplog.set_level(logging.DEBUG)

    result = task.execute({"params": params})

    assert (result["rows"], result["start"], result["end"]) == (
        2,
        "2024-05-01T00:00:00Z",
        "2024-05-01T03:00:00Z",
    )
    assert sorted(r["user_id"] for r in read_landing(settings, source).to_pylist()) == ["u1", "u2"]
    assert task.conf["spark.jars"] == settings.jdbc_jar
    assert task.env_vars[SOURCE_DSN_ENV].endswith(f"/{crm.name}")
    out, err = capfd.readouterr()
    logs = caplog.text + out + err  # the task's own log lines, the hook's and spark-submit's
    assert "Spark-Submit cmd" in logs and "extract_table.py" in logs
    assert crm.password not in logs
