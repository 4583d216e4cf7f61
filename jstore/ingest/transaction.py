"""Files of one landing batch appear in the lake all together or not at all.

A batch is written as hidden temp files (`.<final name>.tmp`, beside their final names, so
Spark and pyarrow never read them: both skip names starting with `.` or `_`). Once every temp
file is written and synced, a journal naming each move (temp -> final) and each file to delete
is written atomically into `<landing>/<source>/_journal/`; then the moves and deletes are done
and the journal removed. `recover()` runs before every landing or extract: it replays any
journal left by a crash (roll forward: moves whose temp still exists, deletes) and removes
stray temp files (a crash before the journal: the batch never happened). So a crash at any
point leaves either the whole batch or nothing, which is what lets the lander resume after the
highest landed offset.

`crash_point(name)` is the test hook that proves it: with `JSTORE_CRASH_AT=<name>` in the
environment the process SIGKILLs itself at that point (tests/ingest/test_lander_crash.py).
The points are `before_write`, `after_write`, `after_late_events` (the batch's late events
counted in the registry, its files not yet final), `after_journal`, `mid_rename` and
`before_commit` (after the files, before the consumer-group commit).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jstore.config import Settings
from jstore.lake import landing_dir, quarantine_dir

CRASH_ENV = "JSTORE_CRASH_AT"
TEMP_SUFFIX = ".tmp"
SPARK_OUTPUT = "_extract_output"
"""Where an extract's Spark job writes first (a `_` folder: never read as landed data)."""


class SourceBusy(RuntimeError):
    """Another lander or extract of the same source is running."""


def crash_point(name: str) -> None:
    """Test hook: SIGKILL this process here when `JSTORE_CRASH_AT` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def temp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}{TEMP_SUFFIX}")


class LandingTransaction:
    """Collects the temp files of one batch, then makes them final in one journaled step."""

    def __init__(self, journal_dir: Path):
        self.journal_dir = journal_dir
        self.moves: list[tuple[Path, Path]] = []
        self.deletes: list[Path] = []

    def temp_for(self, final: Path) -> Path:
        """Where to write the file that becomes `final` on commit."""
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_path(final)
        self.moves.append((temp, final))
        return temp

    def move_on_commit(self, written: Path, final: Path) -> None:
        """Make an already written file (outside the visible lake, e.g. a Spark output folder
        starting with `_`) final on commit."""
        final.parent.mkdir(parents=True, exist_ok=True)
        self.moves.append((written, final))

    def delete_on_commit(self, path: Path) -> None:
        self.deletes.append(path)

    def commit(self) -> None:
        if not self.moves and not self.deletes:
            return
        for temp, _ in self.moves:
            _fsync(temp)
        crash_point("after_write")
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        journal = self.journal_dir / f"{uuid.uuid4().hex}.json"
        doc = {
            "moves": [[str(t), str(f)] for t, f in self.moves],
            "deletes": [str(p) for p in self.deletes],
        }
        tmp = temp_path(journal)
        tmp.write_text(json.dumps(doc))
        _fsync(tmp)
        os.replace(tmp, journal)
        _fsync_dir(self.journal_dir)
        crash_point("after_journal")
        _replay(journal)


def spark_output_dir(settings: Settings, source: str) -> Path:
    return landing_dir(settings, source) / SPARK_OUTPUT


def recover_source(settings: Settings, source: str) -> None:
    """Finish or undo what a crashed lander or extract of `source` left behind."""
    landing = landing_dir(settings, source)
    recover(landing / "_journal", landing, quarantine_dir(settings, source))
    shutil.rmtree(spark_output_dir(settings, source), ignore_errors=True)


def recover(journal_dir: Path, *roots: Path) -> int:
    """Finish every journaled batch and delete stray temp files; returns the journals replayed."""
    journals = sorted(journal_dir.glob("*.json")) if journal_dir.is_dir() else []
    for journal in journals:
        _replay(journal)
    for root in (journal_dir, *roots):
        for stray in _temp_files(root):
            stray.unlink(missing_ok=True)
    return len(journals)


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """One lander or extract per source at a time (an advisory lock on a local file)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SourceBusy(
                f"another lander or extract holds {lock_file}; try again when it is done"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replay(journal: Path) -> None:
    doc = json.loads(journal.read_text())
    for i, (temp, final) in enumerate(doc["moves"]):
        if os.path.exists(temp):
            os.replace(temp, final)
        if i == 0:
            crash_point("mid_rename")
    for path in doc["deletes"]:
        Path(path).unlink(missing_ok=True)
    for folder in {os.path.dirname(f) for _, f in doc["moves"]}:
        _fsync_dir(Path(folder))
    journal.unlink()


def _temp_files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for folder, _, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                yield Path(folder) / name


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    if path.is_dir():
        _fsync(path)
