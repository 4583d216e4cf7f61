"""Progress of long work: library code counts, whoever runs it decides how to show the counts.

Library functions (land, materialize, export) open a task and advance it; they never print:

    with progress.task("land purchases", unit="messages"):
        progress.expect(20_000)  # when known: then a bar shows the share done
        for batch in batches:
            ...
            progress.advance(len(batch))

The reporter of the current context shows the counts. By default it is `LineReporter` on the
logger `jstore.progress`: a line every 10 s while a task runs and a last line when it took
that long, which is what an Airflow task's log shows. The CLI installs its own with
`reporting(...)` (a rich progress bar on a terminal, plain lines otherwise: jstore/cli/).
`advance` outside any task does nothing, so library code can be called from anywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

logger = logging.getLogger("jstore.progress")


@dataclass
class Task:
    description: str
    total: int | None
    """How many units the task will count, when known in advance."""
    unit: str
    completed: int = 0
    started_at: float = field(default_factory=time.monotonic)
    failed: bool = False

    def line(self) -> str:
        """`land purchases: 12,000 of 20,000 messages (60%), 5.2 s` (ended with done/failed)."""
        done = f"{self.completed:,}"
        if self.total:
            done += f" of {self.total:,} {self.unit} ({100 * self.completed // self.total}%)"
        else:
            done += f" {self.unit}"
        return f"{self.description}: {done}, {time.monotonic() - self.started_at:.1f} s"


class Reporter(Protocol):
    def started(self, task: Task) -> None: ...

    def advanced(self, task: Task) -> None: ...

    def finished(self, task: Task) -> None: ...


class LineReporter:
    """A line per running task every `every_s` seconds, also while it counts nothing (a
    thread watches), and a last line (`… done` or `… failed`) for a task that ran that long:
    quick tasks print nothing. With `every_s` 0, a line at every count and no thread."""

    def __init__(self, write: Callable[[str], None], every_s: float = 10.0):
        self.write = write
        self.every_s = every_s
        self._last_line: dict[int, float] = {}
        self._running: dict[int, Task] = {}
        self._lock = threading.Lock()
        self._watching = False

    def started(self, task: Task) -> None:
        with self._lock:
            self._running[id(task)] = task
            self._last_line[id(task)] = task.started_at
            if self.every_s > 0 and not self._watching:
                self._watching = True
                threading.Thread(target=self._watch, name="jstore-progress", daemon=True).start()

    def advanced(self, task: Task) -> None:
        with self._lock:
            now = time.monotonic()
            if id(task) not in self._running or now - self._last_line[id(task)] < self.every_s:
                return
            self._last_line[id(task)] = now
        self.write(task.line())

    def finished(self, task: Task) -> None:
        with self._lock:
            self._running.pop(id(task), None)
            self._last_line.pop(id(task), None)
        if time.monotonic() - task.started_at >= self.every_s:
            self.write(f"{task.line()}, {'failed' if task.failed else 'done'}")

    def _watch(self) -> None:
        """Write the line of every task that has not had one for `every_s`; stop when none runs."""
        while True:
            time.sleep(min(self.every_s, 1.0))
            with self._lock:
                if not self._running:
                    self._watching = False
                    return
                running = list(self._running.values())
            for task in running:
                self.advanced(task)


LOG_REPORTER = LineReporter(logger.info)
"""Where progress goes when nobody installed a reporter: the `jstore.progress` log."""
_reporter: ContextVar[Reporter | None] = ContextVar("jstore_progress_reporter", default=None)
_current: ContextVar[Task | None] = ContextVar("jstore_progress_task", default=None)


@contextmanager
def task(description: str, total: int | None = None, unit: str = "rows") -> Iterator[Task]:
    """A unit of long work; `advance` inside it counts for it (the innermost task)."""
    current = Task(description, total, unit)
    reporter = _current_reporter()
    reporter.started(current)
    token = _current.set(current)
    try:
        yield current
    except BaseException:
        current.failed = True
        raise
    finally:
        _current.reset(token)
        reporter.finished(current)


def expect(total: int, at_most: int | None = None) -> None:
    """Say how many units the current task will count (no more than `at_most`, a budget)."""
    current = _current.get()
    if current is not None:
        current.total = total if at_most is None else min(total, at_most)
        _current_reporter().advanced(current)


def advance(count: int) -> None:
    """Count `count` more units of the current task (none: nothing happens)."""
    current = _current.get()
    if current is not None:
        current.completed += count
        _current_reporter().advanced(current)


def _current_reporter() -> Reporter:
    return _reporter.get() or LOG_REPORTER


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Show the progress of the tasks run inside the block with `reporter`."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
