"""What spark-submit runs for JStore, and running it as a subprocess of this Python.

Spark is not imported here: a job runs in its own process. `spark_job` builds what spark-submit
is given (the script, its arguments, the environment of the driver and workers) in one place,
for the CLI's launcher (`submit`, `run_spark_job`) and the compute DAG's SparkSubmitOperator
alike. The launcher adds the JSTORE_* environment of its settings (the job rebuilds them with
`Settings()`); under Airflow the worker's own JSTORE_* environment is inherited.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

from pydantic import SecretStr

from jstore.config import Settings

FAILURE_TAIL_LINES = 15
"""How many of the job's last output lines a failure message carries."""


class SparkJobFailed(RuntimeError):
    """The Spark job exited non-zero; the message ends with its last lines of output."""


@dataclass(frozen=True)
class SparkJob:
    """The arguments of spark-submit, named as SparkSubmitOperator names them."""

    name: str
    application: str
    """The job's script, inside the installed `jobs` package."""
    application_args: list[str]
    env_vars: dict[str, str] = field(default_factory=dict)
    """The Python of driver and workers (this one) and the folder `jobs` and `jstore` are in."""


def job_script(name: str) -> Path:
    """The path of `jobs/<name>` where the `jobs` package is installed (the repo, or a wheel)."""
    spec = find_spec("jobs")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the `jobs` package is not installed beside `jstore`")
    return Path(next(iter(spec.submodule_search_locations))) / name


def spark_job(script: str, args: Sequence[str], name: str) -> SparkJob:
    """The one place a JStore Spark job is described: `spark-submit jobs/<script> args`."""
    application = job_script(script)
    python = sys.executable
    return SparkJob(
        name=name,
        application=str(application),
        application_args=list(args),
        env_vars={
            "PYSPARK_PYTHON": python,
            "PYSPARK_DRIVER_PYTHON": python,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(application.parent.parent), os.environ.get("PYTHONPATH")) if p
            ),
        },
    )


def compute_job(request_path: str, view: str) -> SparkJob:
    """`spark-submit jobs/compute_features.py --request <path>` (jstore/request.py)."""
    return spark_job("compute_features.py", ["--request", request_path], f"jstore-compute-{view}")


def job_environment(settings: Settings) -> dict[str, str]:
    """The JSTORE_* variables that rebuild `settings` in the job."""
    env = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"JSTORE_{name.upper()}"] = str(value)
    return env


def submit(
    settings: Settings,
    job: SparkJob,
    *,
    spark_options: Sequence[str] = (),
    description: str,
) -> subprocess.CompletedProcess[str]:
    """Run `spark-submit --master <settings.spark_master> [spark_options] <job>` and wait for it.

    Raises SparkJobFailed("<description> failed (exit N):\\n<last lines>") if it exits non-zero.
    """
    env = {**os.environ, **job_environment(settings), **job.env_vars}
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        settings.spark_master,
        "--name",
        job.name,
        *spark_options,
        job.application,
        *job.application_args,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip().splitlines()
        tail = "\n".join(output[-FAILURE_TAIL_LINES:])
        raise SparkJobFailed(f"{description} failed (exit {done.returncode}):\n{tail}")
    return done


def run_spark_job(
    settings: Settings,
    script: Path,
    args: Sequence[str],
    *,
    spark_options: Sequence[str] = (),
    description: str,
) -> subprocess.CompletedProcess[str]:
    """`submit` the job `jobs/<script.name> args` (the extract's launcher)."""
    job = spark_job(Path(script).name, args, f"jstore-{Path(script).stem}")
    return submit(settings, job, spark_options=spark_options, description=description)
