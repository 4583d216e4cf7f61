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

Fencing. The writer holds the source's lease (jstore/registry/leases.py). Its temp files carry
its lease token (`.<final name>.<token>.tmp`), so no other holder's batch can ever be renamed
by it. Right before the journal (the commit point) it checks the lease on the server (`fence`):
a holder whose lease expired and was taken over gets LeaseLost, deletes its temp files and
publishes nothing. Before each rename it confirms the lease again (`confirm`, a server call only
when the last renew is not recent); and a journal whose temp files are gone (the next holder's
recovery deleted them before the journal appeared) is dropped, not replayed. What remains is a
pause of the writer longer than the lease between its last check and a rename
(docs/ingestion.md).

On an object store (jstore/lake_fs.py) the same protocol holds with its operations: a temp file
is one PUT (durable once acknowledged, so `sync` only checks it still exists), the journal is
PUT under a temp name and copied to its final name (the commit point: the copy makes the whole
journal appear at once), and each move is a server-side copy then a delete of the temp. A crash
between the copy and the delete leaves both; replaying copies again (the same bytes) and deletes,
so replay stays idempotent, and two replayers (a writer past its lease and the next holder)
tolerate each other's deletes. Readers never see a temp file (hidden name) or half an object.

`crash_point(name)` is the test hook that proves it: with `JSTORE_CRASH_AT=<name>` in the
environment the process SIGKILLs itself at that point (tests/ingest/test_lander_crash.py).
The points are `before_write`, `after_write`, `after_late_events` (the batch's late events
counted in the registry, its files not yet final), `after_fence` (lease checked, journal not
written), `after_journal`, `mid_rename` and `before_commit` (after the files, before the
consumer-group commit). `JSTORE_PAUSE_AT=<name>` stops the process there instead (SIGSTOP), until
a test sends SIGCONT: a holder paused past its lease (tests/ingest/test_leases.py).
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from contextlib import suppress

from jstore.config import Settings
from jstore.lake import landing_dir, quarantine_dir
from jstore.lake_fs import LakePath
from jstore.registry.leases import Lease, LeaseLost
from jstore.registry.leases import SourceBusy as SourceBusy

CRASH_ENV = "JSTORE_CRASH_AT"
PAUSE_ENV = "JSTORE_PAUSE_AT"
TEMP_SUFFIX = ".tmp"
SPARK_OUTPUT = "_extract_output"
"""Where an extract's Spark job writes first (a `_` folder: never read as landed data)."""


def crash_point(name: str) -> None:
    """Test hook: SIGKILL this process here when `JSTORE_CRASH_AT` names this point (SIGSTOP
    when `JSTORE_PAUSE_AT` does)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(PAUSE_ENV) == name:
        os.kill(os.getpid(), signal.SIGSTOP)


def temp_path(final: LakePath, token: int | None = None) -> LakePath:
    """The hidden temp name of `final` (of the holder of lease `token`, for landed files)."""
    tag = "" if token is None else f".{token}"
    return final.with_name(f".{final.name}{tag}{TEMP_SUFFIX}")


class LandingTransaction:
    """Collects the temp files of one batch, then makes them final in one journaled step,
    fenced by the writer's lease."""

    def __init__(self, journal_dir: LakePath, lease: Lease):
        self.journal_dir = journal_dir
        self.lease = lease
        self.moves: list[tuple[LakePath, LakePath]] = []
        self.deletes: list[LakePath] = []

    def temp_for(self, final: LakePath) -> LakePath:
        """Where to write the file that becomes `final` on commit."""
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_path(final, self.lease.token)
        self.moves.append((temp, final))
        return temp

    def move_on_commit(self, written: LakePath, final: LakePath) -> None:
        """Make an already written file (outside the visible lake, e.g. a Spark output folder
        starting with `_`) final on commit."""
        final.parent.mkdir(parents=True, exist_ok=True)
        self.moves.append((written, final))

    def delete_on_commit(self, path: LakePath) -> None:
        self.deletes.append(path)

    def commit(self) -> None:
        if not self.moves and not self.deletes:
            return
        try:
            self._sync_and_fence()
        except LeaseLost:
            self._abandon()
            raise
        crash_point("after_fence")
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        journal = self.journal_dir / f"{uuid.uuid4().hex}.json"
        doc = {
            "token": self.lease.token,
            "moves": [[str(t), str(f)] for t, f in self.moves],
            "deletes": [str(p) for p in self.deletes],
        }
        tmp = temp_path(journal)
        with tmp.open_output() as stream:
            stream.write(json.dumps(doc).encode())
        tmp.sync()
        try:
            self.lease.confirm()
        except LeaseLost:
            tmp.unlink(missing_ok=True)
            self._abandon()
            raise
        tmp.replace(journal)
        _sync_dir(self.journal_dir)
        crash_point("after_journal")
        if any(not temp.exists() for temp, _ in self.moves) and journal.exists():
            journal.unlink()  # the next holder recovered before the journal appeared
            raise LeaseLost(
                f"source {self.lease.source!r}: the temp files of this batch (token "
                f"{self.lease.token}) were removed by the holder that took over; not committed"
            )
        _replay(journal, self.lease)

    def _sync_and_fence(self) -> None:
        try:
            for temp, _ in self.moves:
                temp.sync()
        except FileNotFoundError:
            self.lease.fence()  # LeaseLost: the next holder's recovery deleted them
            raise
        crash_point("after_write")
        self.lease.fence()

    def _abandon(self) -> None:
        """Delete this batch's own temp files (never another holder's: names carry the token)."""
        for temp, _ in self.moves:
            if temp.name.endswith(f".{self.lease.token}{TEMP_SUFFIX}"):
                temp.unlink(missing_ok=True)


def spark_output_dir(settings: Settings, source: str) -> LakePath:
    return landing_dir(settings, source) / SPARK_OUTPUT


def recover_source(settings: Settings, source: str) -> None:
    """Finish or undo what a crashed lander or extract of `source` left behind."""
    landing = landing_dir(settings, source)
    recover(landing / "_journal", landing, quarantine_dir(settings, source))
    spark_output_dir(settings, source).rmtree()


def recover(journal_dir: LakePath, *roots: LakePath) -> int:
    """Finish every journaled batch and delete stray temp files; returns the journals replayed."""
    journals = journal_dir.glob("*.json")
    for journal in journals:
        _replay(journal)
    for root in (journal_dir, *roots):
        for stray in root.rglob(f".*{TEMP_SUFFIX}"):
            stray.unlink(missing_ok=True)
    return len(journals)


def read_journal(journal: LakePath) -> tuple[list[tuple[LakePath, LakePath]], list[LakePath]]:
    """The (temp, final) moves and the deletes a journal names."""
    doc = json.loads(journal.read_text())
    moves = [(journal.parse(temp), journal.parse(final)) for temp, final in doc["moves"]]
    return moves, [journal.parse(path) for path in doc.get("deletes", [])]


def _replay(journal: LakePath, lease: Lease | None = None) -> None:
    """Do a journal's moves and deletes, then remove it. The writer passes its `lease`, confirmed
    before each step; a recovering holder (who holds the lease) passes none. Both may replay
    the same journal when a writer outlived its lease: each step tolerates the other's."""
    try:
        moves, deletes = read_journal(journal)
    except FileNotFoundError:
        return  # replayed by the holder that took over
    for i, (temp, final) in enumerate(moves):
        if lease is not None:
            lease.confirm()
        with suppress(FileNotFoundError):  # renamed before a crash, or by the other replayer
            temp.replace(final)
        if i == 0:
            crash_point("mid_rename")
    for path in deletes:
        if lease is not None:
            lease.confirm()
        path.unlink(missing_ok=True)
    for folder in {final.parent for _, final in moves}:
        _sync_dir(folder)
    journal.unlink(missing_ok=True)


def _sync_dir(folder: LakePath) -> None:
    """Make the renames in a local folder durable (an object store has no folders to sync)."""
    if folder.is_local and folder.is_dir():
        folder.sync()
