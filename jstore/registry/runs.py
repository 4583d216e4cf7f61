"""Run records: what each land, extract, compute, validate, publish and materialize run did."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from jstore.model import ResolvedView

RunKind = Literal["land", "extract", "compute", "validate", "publish", "materialize", "export"]
RunStatus = Literal["running", "success", "failed"]


def new_run_id(kind: str) -> str:
    """Sortable and unique: `<kind>-<utc time>-<random>`."""
    return f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class RunRecord(BaseModel):
    run_id: str
    kind: RunKind
    subject: str
    """The source or feature view the run worked on (`*` for several)."""
    version: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    status: RunStatus = "running"
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    rows: int | None = None
    details: dict[str, Any] = {}
    error: str | None = None

    @classmethod
    def of_interval(
        cls, kind: RunKind, view: ResolvedView, start: datetime, end: datetime, **fields: Any
    ) -> RunRecord:
        """A run over [start, end) of a view version (compute, validate, publish); its id is
        generated unless `run_id` is given."""
        fields.setdefault("run_id", new_run_id(kind))
        return cls(
            kind=kind, subject=view.name, version=view.version, start=start, end=end, **fields
        )
