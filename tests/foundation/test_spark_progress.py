"""Spark's console progress bar on a job's stderr becomes `jstore.progress` counts, live."""

from __future__ import annotations

import os

from jstore import progress
from jstore.spark_submit import _console_lines, _count_stages


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int | None, str]] = []

    def started(self, task: progress.Task) -> None:
        self.seen.append(("started", task.completed, task.total, task.description))

    def advanced(self, task: progress.Task) -> None:
        self.seen.append(("advanced", task.completed, task.total, task.description))

    def finished(self, task: progress.Task) -> None:
        self.seen.append(("finished", task.completed, task.total, task.description))


def test_each_stage_is_a_task_counted_from_its_bar_and_lines_but_info_are_kept() -> None:
    stderr = [
        "26/11/30 06:00:01 WARN NativeCodeLoader: Unable to load native-hadoop library",
        "[Stage 0:>                                                          (0 + 2) / 8]",
        "[Stage 0:==============>                                            (2 + 2) / 8]",
        "[Stage 0:============================================>              (6 + 2) / 8]",
        "[Stage 2:>                 (0 + 2) / 4][Stage 3:>                 (0 + 0) / 2]",
        "[Stage 2:=========>                                                 (2 + 2) / 4]",
        "ERROR Executor: Exception in task 3.0 in stage 2.0",
        "26/11/30 06:00:09 INFO SparkContext: Invoking stop() from shutdown hook",
    ]
    recorder = Recorder()

    with progress.reporting(recorder):
        tail = _count_stages(iter(stderr), "compute of v")

    assert list(tail) == [stderr[0], stderr[-2]]
    assert recorder.seen == [
        ("started", 0, None, "compute of v: stage 0"),
        ("advanced", 0, 8, "compute of v: stage 0"),
        ("advanced", 0, 8, "compute of v: stage 0"),
        ("advanced", 2, 8, "compute of v: stage 0"),
        ("advanced", 6, 8, "compute of v: stage 0"),
        ("advanced", 8, 8, "compute of v: stage 0"),
        ("finished", 8, 8, "compute of v: stage 0"),
        ("started", 0, None, "compute of v: stage 2"),
        ("advanced", 0, 4, "compute of v: stage 2"),
        ("advanced", 0, 4, "compute of v: stage 2"),
        ("advanced", 2, 4, "compute of v: stage 2"),
        ("finished", 2, 4, "compute of v: stage 2"),
    ]


def test_console_lines_split_redraws_and_lines_as_they_arrive() -> None:
    read, write = os.pipe()
    os.write(write, "log line\n[Stage 1:>  (0 + 2) / 2]\r[Stage 1:=> (1 + 1) / 2]\rtäil".encode())
    os.close(write)

    assert list(_console_lines(read)) == [
        "log line",
        "[Stage 1:>  (0 + 2) / 2]",
        "[Stage 1:=> (1 + 1) / 2]",
        "täil",
    ]
    os.close(read)
