"""jstore.progress: library code counts, a reporter shows the counts (times left out here)."""

from __future__ import annotations

import logging
import re
import time

import pytest

from jstore import progress
from jstore.progress import LineReporter


def without_time(line: str) -> str:
    return re.sub(r"\d+\.\d s", "… s", line)


def test_lines_count_the_innermost_task_and_end_with_done() -> None:
    lines: list[str] = []
    with (
        progress.reporting(LineReporter(lines.append, every_s=0)),
        progress.task("land purchases", unit="messages"),
    ):
        progress.expect(1_500, at_most=1_200)
        progress.advance(1_000)
        with progress.task("write files", unit="files"):
            progress.advance(2)
        progress.advance(200)

    assert [without_time(line) for line in lines] == [
        "land purchases: 0 of 1,200 messages (0%), … s",
        "land purchases: 1,000 of 1,200 messages (83%), … s",
        "write files: 2 files, … s",
        "write files: 2 files, … s, done",
        "land purchases: 1,200 of 1,200 messages (100%), … s",
        "land purchases: 1,200 of 1,200 messages (100%), … s, done",
    ]


def test_a_failed_task_ends_with_failed() -> None:
    lines: list[str] = []
    with (
        progress.reporting(LineReporter(lines.append, every_s=0)),
        pytest.raises(RuntimeError),
        progress.task("export fraud_v1", total=10),
    ):
        progress.advance(4)
        raise RuntimeError("PostgreSQL went away")

    assert [without_time(line) for line in lines][-1] == (
        "export fraud_v1: 4 of 10 rows (40%), … s, failed"
    )


def test_a_quick_task_prints_nothing_and_counting_outside_a_task_does_nothing() -> None:
    lines: list[str] = []
    with progress.reporting(LineReporter(lines.append, every_s=3600)):
        progress.advance(5)
        with progress.task("materialize user_purchases"):
            progress.advance(5)

    assert lines == []


def test_without_a_reporter_progress_goes_to_the_log(caplog, monkeypatch) -> None:
    monkeypatch.setattr(progress.LOG_REPORTER, "every_s", 0)
    with (
        caplog.at_level(logging.INFO, logger="jstore.progress"),
        progress.task("materialize user_purchases", unit="rows"),
    ):
        progress.advance(7)

    assert [without_time(r.getMessage()) for r in caplog.records] == [
        "materialize user_purchases: 7 rows, … s",
        "materialize user_purchases: 7 rows, … s, done",
    ]


def test_a_task_that_counts_nothing_for_a_while_still_gets_lines() -> None:
    """A join that takes minutes in one call: the reporter's thread writes its lines."""
    lines: list[str] = []
    with (
        progress.reporting(LineReporter(lines.append, every_s=0.05)),
        progress.task("export fraud_v1", total=10),
    ):
        time.sleep(1.0)  # twenty intervals: at least one line is due
        progress.advance(10)

    shown = [without_time(line) for line in lines]
    assert "export fraud_v1: 0 of 10 rows (0%), … s" in shown
    assert shown[-1] == "export fraud_v1: 10 of 10 rows (100%), … s, done"
