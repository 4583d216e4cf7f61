"""How the `jstore` command shows the progress of long work (jstore/progress.py): a rich
progress bar when stderr is a terminal, a plain line every few seconds otherwise (logs, CI).
Both go to stderr, so stdout keeps only the command's results."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from jstore import progress
from jstore.progress import LineReporter, Reporter, Task

PLAIN_LINE_EVERY_S = 5.0


class BarReporter:
    """A rich bar per running task: description, bar, count of total, unit, elapsed time."""

    def __init__(self, console: Console):
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.ids: dict[int, TaskID] = {}

    def started(self, task: Task) -> None:
        if not self.ids:
            self.bars.start()
        self.ids[id(task)] = self.bars.add_task(task.description, total=task.total, unit=task.unit)

    def advanced(self, task: Task) -> None:
        self.bars.update(self.ids[id(task)], completed=task.completed, total=task.total)

    def finished(self, task: Task) -> None:
        bar = self.ids.pop(id(task))
        # done: a full bar of what was counted; failed: the bar where it stopped
        total = task.total if task.failed else task.completed
        self.bars.update(bar, completed=task.completed, total=total)
        self.bars.stop_task(bar)
        if not self.ids:
            self.bars.stop()


def reporter_for(stream: TextIO) -> Reporter:
    if stream.isatty():
        return BarReporter(Console(file=stream))
    return LineReporter(lambda line: print(line, file=stream, flush=True), PLAIN_LINE_EVERY_S)


@contextmanager
def shown_on_stderr() -> Iterator[None]:
    """Show the progress of every task run inside the block on stderr."""
    with progress.reporting(reporter_for(sys.stderr)):
        yield
