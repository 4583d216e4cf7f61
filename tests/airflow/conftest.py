"""Fixtures of the Airflow tests: an Airflow home of their own and a snapshot of the example repo.

Airflow reads its configuration when first imported, so the environment (the one `make airflow`
uses, with a home of its own) is set here, before any test module imports it. Test modules never
import this file (a second import would make a second home and point the environment at it):
what they share is in dag_inputs.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jstore.orchestration import airflow_environment
from jstore.repo import FeatureRepo
from tests.airflow.dag_inputs import DAGS, snapshot_of

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="jstore-airflow-tests-"))
os.environ.update(airflow_environment(AIRFLOW_HOME))


def pytest_unconfigure(config: pytest.Config) -> None:
    """The Airflow home goes with the test session (each session made one in /tmp, SQLite
    database and logs, and left it there)."""
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="module")
def example_snapshot(example_repo: FeatureRepo, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("snapshot") / "registry_snapshot.json"
    snapshot_of(example_repo).write(path)
    return path


@pytest.fixture(scope="module")
def dagbag(example_snapshot: Path) -> Iterator:
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JSTORE_REGISTRY_SNAPSHOT", str(example_snapshot))
        yield DagBag(dag_folder=DAGS)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database, which `dag.test()` needs."""
    from jstore.orchestration import prepare_local_airflow

    prepare_local_airflow(AIRFLOW_HOME)
    return AIRFLOW_HOME
