"""A staged run: the Parquet rows one compute run wrote, waiting for validation and publish.

`<lake>/staging/<view>/<run>/` holds `part-*.parquet` (the join keys, `feature_ts`, the features)
and `_manifest.json`, written last, which makes the folder a complete staged run.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, field_validator

from jstore.config import Settings
from jstore.durations import as_utc
from jstore.lake import staging_dir

MANIFEST = "_manifest.json"


class StagedRun(BaseModel):
    view: str
    version: int
    run_id: str
    start: datetime
    end: datetime
    rows: int
    path: Path = Path()
    """The folder; not stored in the manifest, so a staged run can be moved."""

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, ts: datetime) -> datetime:
        return as_utc(ts)

    @property
    def parquet_files(self) -> list[Path]:
        return sorted(self.path.glob("*.parquet"))

    def write_manifest(self) -> None:
        tmp = self.path / f".{MANIFEST}.tmp"
        tmp.write_text(self.model_dump_json(indent=2, exclude={"path"}))
        tmp.replace(self.path / MANIFEST)

    @classmethod
    def load(cls, path: Path) -> StagedRun:
        manifest = path / MANIFEST
        if not manifest.exists():
            raise FileNotFoundError(f"{path} is not a complete staged run (no {MANIFEST})")
        return cls.model_validate_json(manifest.read_text()).model_copy(update={"path": path})

    @classmethod
    def find(cls, settings: Settings, view: str, run_id: str) -> StagedRun:
        return cls.load(staging_dir(settings, view, run_id))
