"""What spark-submit runs for JStore, and running it as a subprocess of this Python.

Spark is not imported here: a job runs in its own process. `spark_job` builds what spark-submit
is given (the script, its arguments, the environment of the driver and workers) in one place,
for the CLI's launcher (`submit`) and the DAGs' SparkSubmitOperators alike. The launcher adds
the JSTORE_* environment of its settings (the job rebuilds them with `Settings()`); so does a
DAG task, with its settings taken from Airflow Connections (jstore/connections.py).
"""

from __future__ import annotations

import codecs
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path

from pydantic import SecretStr

from jstore import phases, progress
from jstore.config import Settings
from jstore.lake_fs import spark_jars
from jstore.spark_local import local_driver_conf, local_driver_env

FAILURE_TAIL_LINES = 15
"""How many of the job's last lines of stdout, and of stderr, a failure message carries."""

PROGRESS_CONF = {"spark.ui.showConsoleProgress": "true"}
"""Spark's console progress bar on the job's stderr (`[Stage 3:==>  (2 + 2) / 8]`), which the
launcher turns into `jstore.progress` counts and SparkSubmitOperator streams into the task log."""

STAGE_PROGRESS = re.compile(r"\[Stage (\d+):[=> ]*\((\d+) \+ \d+\) / (\d+)\]")
SPARK_INFO = re.compile(r"^\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} INFO ")
"""A Spark INFO log line: never part of a failure's tail, which the driver's shutdown would
otherwise fill with INFO lines logged after the job's own error."""


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
    conf: dict[str, str] = field(default_factory=lambda: dict(PROGRESS_CONF))


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
    description: str,
    input_bytes: Callable[[], int] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `spark-submit --master <settings.spark_master> <job>` and wait for it.

    Spark's stage progress is counted live (`jstore.progress`: a bar in the CLI, log lines in
    a task) as `<description>: stage N` in tasks. Raises SparkJobFailed("<description> failed
    (exit N):\\n<last lines>") if it exits non-zero. On a `local[...]` master the driver gets
    the confs and environment of `jstore.spark_local` (a fast start), chosen by the bytes the
    job reads, `input_bytes()` (asked only then; unknown without it). The job's time is a
    `spark-submit` phase (`jstore.phases`), followed by the phases the job printed, if any.
    """
    env = {**os.environ, **job_environment(settings), **job.env_vars}
    began = time.perf_counter()
    with ExitStack() as run:
        conf = dict(job.conf)
        if settings.spark_master.startswith("local"):
            size = input_bytes() if input_bytes else None
            conf |= run.enter_context(local_driver_conf(size))
            env = {**local_driver_env(), **env}
        confs = [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]
        command = [
            str(Path(sys.executable).parent / "spark-submit"),
            "--master",
            settings.spark_master,
            "--name",
            job.name,
            *confs,
            job.application,
            *job.application_args,
        ]
        stdout = run.enter_context(tempfile.TemporaryFile("w+"))
        process = run.enter_context(
            subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.PIPE)
        )
        assert process.stderr is not None
        tail = _count_stages(_console_lines(process.stderr.fileno()), description)
        returncode = process.wait()
        stdout.seek(0)
        output = stdout.read()
        phases.add_job_phases(output, time.perf_counter() - began, launch="spark-submit")
        if returncode != 0:  # raised inside: a failed job's class archive is not kept
            raise SparkJobFailed(failure_message(description, returncode, output, tail))
    return subprocess.CompletedProcess(command, returncode, output, "\n".join(tail))


def failure_message(
    description: str, returncode: int, stdout: str, stderr_tail: Iterable[str]
) -> str:
    """`<description> failed (exit N):` then the last lines of the job's stdout, then of its
    stderr, Spark's INFO log lines left out. A Python driver's own error is on stdout: Spark's
    PythonRunner merges the driver Python's stderr into its stdout."""
    driver = [line for line in stdout.splitlines() if not SPARK_INFO.match(line)]
    lines = [*driver[-FAILURE_TAIL_LINES:], *list(stderr_tail)[-FAILURE_TAIL_LINES:]]
    return f"{description} failed (exit {returncode}):\n" + "\n".join(lines)


def _console_lines(fd: int) -> Iterator[str]:
    """Lines of Spark's stderr as they come, a progress bar's redraws (ended by a carriage
    return) included."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while chunk := os.read(fd, 65536):
        pending += decoder.decode(chunk)
        *lines, pending = re.split(r"[\r\n]", pending)
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


def _count_stages(lines: Iterator[str], description: str) -> deque[str]:
    """Count each stage's finished tasks as a progress task; keep the last lines that are neither
    progress bars nor Spark INFO log lines (a failure's message). Spark erases a stage's bar
    when the stage ends, so a stage followed by another is counted whole."""
    tail: deque[str] = deque(maxlen=FAILURE_TAIL_LINES)
    with ExitStack() as stages:
        stage, done, total_of_stage = None, 0, 0
        for line in lines:
            bars = STAGE_PROGRESS.findall(line)
            if not bars:
                if not SPARK_INFO.match(line):
                    tail.append(line)
                continue
            number, finished, total = (int(x) for x in bars[0])
            if number != stage:
                progress.advance(total_of_stage - done if stage is not None else 0)
                stages.close()
                stages.enter_context(progress.task(f"{description}: stage {number}", unit="tasks"))
                progress.expect(total)
                stage, done, total_of_stage = number, 0, total
            progress.advance(finished - done)
            done = finished
    return tail


def with_jars(job: SparkJob, settings: Settings) -> SparkJob:
    """`job` with the jars of `jstore.lake_fs.spark_jars` (the PostgreSQL JDBC driver, and the
    S3A connector for a lake on S3), for jobs that read PostgreSQL (extract, the Spark export),
    and the driver JVM in UTC (the session's time zone) for the timestamps JDBC reads.

    The jars are given to spark-submit (`--conf spark.jars=…`, as `--jars` sets it, from the
    CLI's `submit` and the DAGs' SparkSubmitOperator alike): `spark.jars` set by the job's own
    session comes too late for the driver JVM that spark-submit has already started.
    """
    jars = {
        "spark.jars": spark_jars(settings),
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    }
    return replace(job, conf={**job.conf, **jars})
