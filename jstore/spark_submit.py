"""Running a Spark job of jobs/ with spark-submit, as a subprocess of this Python.

Spark is not imported here: the job runs in its own process (`Settings.spark_master`), with the
venv's python as driver and worker, the repo root on PYTHONPATH and these settings passed
through the JSTORE_* environment (the job rebuilds them with `Settings()`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr

from jstore.config import PROJECT_ROOT, Settings

FAILURE_TAIL_LINES = 15
"""How many of the job's last output lines a failure message carries."""


class SparkJobFailed(RuntimeError):
    """The Spark job exited non-zero; the message ends with its last lines of output."""


def job_environment(settings: Settings) -> dict[str, str]:
    """The JSTORE_* variables that rebuild `settings` in the job."""
    env = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"JSTORE_{name.upper()}"] = str(value)
    return env


def run_spark_job(
    settings: Settings,
    script: Path,
    args: Sequence[str],
    *,
    spark_options: Sequence[str] = (),
    description: str,
) -> subprocess.CompletedProcess[str]:
    """Run `spark-submit [spark_options] script args` and wait for it.

    Raises SparkJobFailed("<description> failed (exit N):\\n<last lines>") if it exits non-zero.
    """
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
        *spark_options,
        str(script),
        *args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()
        tail = "\n".join(output[-FAILURE_TAIL_LINES:])
        raise SparkJobFailed(f"{description} failed (exit {done.returncode}):\n{tail}")
    return done
