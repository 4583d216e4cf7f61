"""What the Airflow tests load DAGs from: the DAG folder and a registry snapshot."""

from __future__ import annotations

from pathlib import Path

from jstore.registry import Snapshot
from jstore.repo import FeatureRepo

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
