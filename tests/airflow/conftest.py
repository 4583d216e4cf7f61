"""Fixtures of the Airflow tests: an Airflow home of their own and a snapshot of the example repo.

Airflow reads its configuration when first imported, so the environment (the one `make airflow`
uses, with a home of its own) is set here, before any test module imports it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jstore.orchestration import airflow_environment
from jstore.registry import Snapshot
from jstore.repo import FeatureRepo

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="jstore-airflow-tests-"))
os.environ.update(airflow_environment(AIRFLOW_HOME))

DAGS = Path(__file__).resolve().parents[2] / "dags"


def snapshot_of(repo: FeatureRepo, project: str = "shop") -> Snapshot:
    """The snapshot `Registry.apply(repo)` writes on a fresh registry (every view at v1)."""
    return Snapshot(
        project=project,
        entities=repo.entities,
        sources=repo.sources,
        views={name: repo.resolve(name, 1) for name in repo.views},
        services=repo.services,
    )


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
