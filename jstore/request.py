"""A compute request: one view's interval, resolved and checked once, then carried as a file.

Its caller (the CLI, the compute DAG's task, recompute) looks the view up once and makes the
request with `ComputeRequest.of`, which checks the interval once. The pipeline
(`jstore/pipeline.py`) writes it as `_request.json` into the staged run's folder and starts the
Spark job with `--request <path>`: the job reads the resolved view from that file and never
opens the registry. Validate and publish read the same file back through `StagedRun.request()`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Self

from pydantic import BaseModel, field_validator

from jstore.durations import as_utc, format_duration, is_aligned
from jstore.lake_fs import LakePath
from jstore.model import ResolvedView

REQUEST = "_request.json"


def check_interval(
    view: ResolvedView, start: datetime, end: datetime, now: datetime | None = None
) -> None:
    """Refuse an interval whose ends are not steps of the view, that is empty, or that ends in
    the future (its last step would miss events that have not happened yet)."""
    step = view.definition.step
    for field, ts in (("start", start), ("end", end)):
        if not is_aligned(ts, step):
            raise ValueError(
                f"{field}: {as_utc(ts).isoformat()} is not aligned to the step "
                f"{format_duration(step)} of {view.name}"
            )
    if as_utc(end) <= as_utc(start):
        raise ValueError(f"end: {as_utc(end).isoformat()} must be after start")
    now = as_utc(now or datetime.now(UTC))
    if as_utc(end) > now:
        raise ValueError(
            f"end: {as_utc(end).isoformat()} is in the future (now is {now.isoformat()}); "
            "an interval can be computed once it has ended"
        )


def read_range(view: ResolvedView, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The event times that computing [start, end) needs: the windows at `start - step` onward."""
    lookback: timedelta = view.definition.step + view.definition.max_window
    return as_utc(start) - lookback, as_utc(end)


class RequestFile(BaseModel):
    """What a Spark job is given, resolved from the registry by its launcher and carried as
    `_request.json` (`spark-submit jobs/<job>.py --request <path>`): the job never opens the
    registry."""

    def write(self, folder: LakePath) -> LakePath:
        """Write `_request.json` into `folder`; returns its path."""
        path = folder / REQUEST
        path.write_text(self.model_dump_json(indent=2, by_alias=True))
        return path

    @classmethod
    def load(cls, path: LakePath) -> Self:
        return cls.model_validate_json(path.read_text())


class ComputeRequest(RequestFile):
    """What one compute stages: the resolved view, [start, end), the run id, and `retile`."""

    view: ResolvedView
    start: datetime
    end: datetime
    run_id: str
    """The compute run in the registry, and the staged run's folder."""
    retile: bool = False
    """Rebuild the view's stored tiles from the landing zone instead of reading them."""

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, ts: datetime) -> datetime:
        return as_utc(ts)

    @classmethod
    def of(
        cls,
        view: ResolvedView,
        start: datetime,
        end: datetime,
        run_id: str | None = None,
        *,
        retile: bool = False,
    ) -> ComputeRequest:
        """The request for [start, end) of a resolved view, its interval checked (once): raises
        ValueError naming the field (`start`, `end`). `run_id` is generated unless given."""
        # here, not at the top: the Spark job loads requests, and needs no MongoDB client
        from jstore.registry import new_run_id

        check_interval(view, start, end)
        return cls(
            view=view,
            start=start,
            end=end,
            run_id=run_id or new_run_id("compute"),
            retile=retile,
        )
