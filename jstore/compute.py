"""Staging a view's interval: `jobs/compute_features.py` run with spark-submit.

Spark is not imported here: the job runs in its own process (`Settings.spark_master`, local[*]
by default), with the venv's python, the repo root on PYTHONPATH and these settings passed
through the JSTORE_* environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from jstore.config import PROJECT_ROOT, Settings
from jstore.durations import as_utc, format_duration, is_aligned
from jstore.model import ResolvedView
from jstore.registry import Registry
from jstore.staging import StagedRun

JOB = PROJECT_ROOT / "jobs" / "compute_features.py"


class ComputeFailed(RuntimeError):
    """The Spark job exited non-zero; the message ends with its last lines of output."""


def check_interval(view: ResolvedView, start: datetime, end: datetime) -> None:
    """Refuse an interval whose ends are not steps of the view, or that is empty."""
    step = view.view.step
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
    lookback: timedelta = view.view.step + view.view.max_window
    return as_utc(start) - lookback, as_utc(end)


def job_environment(settings: Settings) -> dict[str, str]:
    """The JSTORE_* variables that rebuild `settings` in the job."""
    env = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"JSTORE_{name.upper()}"] = str(value)
    return env


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
    python = sys.executable
    env = {
        **os.environ,
        **job_environment(settings),
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p
        ),
    }
    command = [
        str(Path(python).parent / "spark-submit"),
        "--master",
        settings.spark_master,
        str(JOB),
        resolved.name,
        "--start",
        as_utc(start).isoformat(),
        "--end",
        as_utc(end).isoformat(),
        "--run-id",
        run_id,
        "--version",
        str(resolved.version),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ComputeFailed(f"compute of {resolved.name} failed (exit {done.returncode}):\n{tail}")
    return StagedRun.find(settings, resolved.name, run_id)
