"""`jstore land` shows its progress: counts of messages read against the batch's size, a rich
bar on a terminal; the library reports the same counts to any reporter (Airflow: the log)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from jstore import progress
from jstore.config import Settings
from jstore.ingest.lander import land
from jstore.model import EventSource
from jstore.progress import LineReporter
from jstore.registry import Registry
from tests.ingest.conftest import Send, purchase

JSTORE = Path(sys.executable).parent / "jstore"
FIVE = [(p % 3, purchase(f"u{p}", 10.0, "2024-05-01T10:00:00Z")) for p in range(5)]


def test_landing_counts_the_messages_read_of_the_batch(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send(FIVE)
    lines: list[str] = []

    with progress.reporting(LineReporter(lines.append, every_s=0)):
        land(settings, registry, "purchases", max_records=4)

    counts = [re.match(r"land purchases: (\d) of 4 messages", line) for line in lines]
    assert all(counts), lines
    assert [int(c[1]) for c in counts] == sorted(int(c[1]) for c in counts)
    assert re.fullmatch(r"land purchases: 4 of 4 messages \(100%\), \d+\.\d s, done", lines[-1])


def test_on_a_terminal_land_draws_a_bar(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send(FIVE)
    env = {
        **os.environ,
        "JSTORE_MONGO_DB": settings.mongo_db,
        "JSTORE_LAKE_URI": settings.lake_uri,
        "JSTORE_PROJECT": settings.project,
        "COLUMNS": "100",
    }
    terminal, stderr = pty.openpty()
    command = subprocess.Popen(
        [str(JSTORE), "land", "purchases"], env=env, stdout=subprocess.PIPE, stderr=stderr
    )
    os.close(stderr)  # the command holds the terminal's other end until it exits
    drawn = b""
    while chunk := _read(terminal):
        drawn += chunk
    os.close(terminal)
    stdout, _ = command.communicate()

    assert command.returncode == 0
    assert stdout.decode().startswith("landed 5 rows of purchases")
    last_frame = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.decode()).splitlines()[-1]
    assert re.fullmatch(r"land purchases ━+ 5/5 messages 0:00:\d\d", last_frame.strip())


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the writing end is closed and all was read
        return b""
