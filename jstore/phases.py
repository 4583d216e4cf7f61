"""Where the time of a run goes: phases timed where they happen, shown by whoever runs them.

Library code times its phases and never prints:

    with phases.timed("validate"):
        ...

Timings are kept only inside `collecting()` (the CLI opens it around `jstore compute` and
prints `summary(...)`, one line at the end); elsewhere `timed` just runs its block. A Spark job
runs in a process of its own: it prints its phases as one `job_line` on its stdout (also read
in an Airflow task's log), and the launcher adds them with `add_job_phases`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

JOB_LINE_PREFIX = "jstore phases: "

_collected: ContextVar[dict[str, float] | None] = ContextVar("jstore_phases", default=None)


@contextmanager
def collecting() -> Iterator[dict[str, float]]:
    """Collect the phases timed inside the block: name -> seconds, in the order first timed."""
    collected: dict[str, float] = {}
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)


def add(name: str, seconds: float) -> None:
    """Add `seconds` to phase `name` (a phase timed twice adds up); nothing outside
    `collecting()`."""
    collected = _collected.get()
    if collected is not None:
        collected[name] = collected.get(name, 0.0) + seconds


@contextmanager
def timed(name: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - began)


def process_age() -> float:
    """Seconds since this process started (its interpreter start and imports, when called
    first thing); 0.0 where /proc is not there."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            # The command name (field 2) may hold spaces: fields are counted after its ')'.
            started_ticks = int(stat.read().rpartition(")")[2].split()[19])
            up = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(up - started_ticks / os.sysconf("SC_CLK_TCK"), 0.0)


def job_line(timings: dict[str, float]) -> str:
    """`jstore phases: {"spark session": 2.1, ...}`: a job's phases for its launcher."""
    return JOB_LINE_PREFIX + json.dumps({k: round(v, 3) for k, v in timings.items()})


def add_job_phases(output: str, wall: float, launch: str) -> None:
    """Add the phases of the job's `job_line` in `output` (its stdout), after `launch`: what
    they leave of the job's `wall` time (starting the JVM, then the job's process)."""
    timings: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith(JOB_LINE_PREFIX):
            timings = json.loads(line.removeprefix(JOB_LINE_PREFIX))
    add(launch, max(wall - sum(timings.values()), 0.0))
    for name, seconds in timings.items():
        add(name, seconds)


def summary(collected: dict[str, float], total: float, rest: str) -> str:
    """`took 12.3 s: start 0.6, spark session 2.0, ..., <rest> 0.9`; `rest` names what the
    phases leave of `total`."""
    parts = [*collected.items(), (rest, max(total - sum(collected.values()), 0.0))]
    return f"took {total:.1f} s: " + ", ".join(f"{name} {s:.1f}" for name, s in parts)
