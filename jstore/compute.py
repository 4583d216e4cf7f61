"""Staging a view's interval: `jobs/compute_features.py` run with spark-submit
(jstore/spark_submit.py: Spark is not imported here)."""

from __future__ import annotations

from datetime import datetime, timedelta

from jstore.config import PROJECT_ROOT, Settings
from jstore.durations import as_utc, format_duration, is_aligned
from jstore.model import ResolvedView
from jstore.registry import Registry
from jstore.spark_submit import SparkJobFailed, run_spark_job
from jstore.staging import StagedRun

JOB = PROJECT_ROOT / "jobs" / "compute_features.py"


class ComputeFailed(RuntimeError):
    """The Spark job exited non-zero; the message ends with its last lines of output."""


def check_interval(view: ResolvedView, start: datetime, end: datetime) -> None:
    """Refuse an interval whose ends are not steps of the view, or that is empty."""
    step = view.definition.step
    for field, ts in (("start", start), ("end", end)):
        if not is_aligned(ts, step):
            raise ValueError(
                f"{field}: {as_utc(ts).isoformat()} is not aligned to the step "
                f"{format_duration(step)} of {view.name}"
            )
    if as_utc(end) <= as_utc(start):
        raise ValueError(f"end: {as_utc(end).isoformat()} must be after start")


def read_range(view: ResolvedView, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The event times that computing [start, end) needs: the windows at `start - step` onward."""
    lookback: timedelta = view.definition.step + view.definition.max_window
    return as_utc(start) - lookback, as_utc(end)


def stage(
    settings: Settings,
    registry: Registry,
    view: str,
    start: datetime,
    end: datetime,
    run_id: str,
    version: int | None = None,
) -> StagedRun:
    """Compute [start, end) of `view` with spark-submit into a staged run, and load it."""
    resolved = registry.get_view(view, version)
    check_interval(resolved, start, end)
    try:
        run_spark_job(
            settings,
            JOB,
            [
                resolved.name,
                "--start",
                as_utc(start).isoformat(),
                "--end",
                as_utc(end).isoformat(),
                "--run-id",
                run_id,
                "--version",
                str(resolved.version),
            ],
            description=f"compute of {resolved.name}",
        )
    except SparkJobFailed as e:
        raise ComputeFailed(str(e)) from e
    return StagedRun.find(settings, resolved.name, run_id)
