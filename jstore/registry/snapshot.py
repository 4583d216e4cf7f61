"""The registry as one JSON file, read by Airflow DAG files at parse time without a database."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import BaseModel

from jstore.model import Entity, FeatureService, ResolvedView, Source


class Snapshot(BaseModel):
    project: str
    entities: dict[str, Entity] = {}
    sources: dict[str, Source] = {}
    views: dict[str, ResolvedView] = {}
    """The current version of each feature view."""
    services: dict[str, FeatureService] = {}

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        return cls.model_validate_json(Path(path).read_text())

    def write(self, path: str | Path) -> None:
        """Atomically: a DAG parse never sees half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide it from a scheduler run as another user
        with os.fdopen(fd, "w") as f:
            f.write(self.model_dump_json(indent=2, by_alias=True))
        os.replace(tmp, path)
