"""Before compute reads a source: its landing zone holds whole batches only.

A lander or extract killed mid-batch leaves hidden temp files (the batch never happened) or a
journal whose renames are half done (some files of the batch visible, some not). Readers never
see temp files, but they do see the renamed half of a batch: compute must not read it.
`ensure_landing_complete` does what the next lander run would do first (jstore/ingest/
transaction.py `recover_source`): roll every journal forward, delete stray temp files. It needs
the source's lease (jstore/registry/leases.py). When a lander or extract holds it, that run
recovered at its start, so only its own batch can be in flight: the call waits until no journal
is left (a rename of one batch takes milliseconds), and refuses with `LandingIncomplete` if one
stays longer than `wait_s`.

`settled_landing` holds the lease instead (waiting for a running lander or extract to finish):
inside it, no batch is in flight, so what the registry says about landed batches (their late
events, jstore/registry/late.py) matches the files.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from jstore.config import Settings
from jstore.ingest.transaction import read_journal, recover_source
from jstore.lake import landing_dir
from jstore.lake_fs import LakePath
from jstore.registry import Registry
from jstore.registry.leases import SourceBusy, acquire_lease

JOURNAL_WAIT_S = 30.0
"""How long a journal of a running lander may stay before compute refuses to read."""
LEASE_WAIT_S = 600.0
"""How long `settled_landing` waits for a running lander or extract (a bounded batch)."""


class LandingIncomplete(RuntimeError):
    """The landing zone of a source holds a batch that cannot be completed now."""


def ensure_landing_complete(
    settings: Settings,
    source_name: str,
    wait_s: float = JOURNAL_WAIT_S,
    registry: Registry | None = None,
) -> None:
    """Make the landing zone of `source_name` hold whole batches only, or raise
    LandingIncomplete saying why (see the module docstring). Without `registry`, one is opened
    for the call."""
    landing = landing_dir(settings, source_name)
    if not landing.is_dir():
        return
    journals = landing / "_journal"
    with ExitStack() as opened:
        if registry is None:
            registry = opened.enter_context(Registry(settings))
        try:
            with acquire_lease(registry, source_name, settings.lease_duration_s):
                _check_journals(source_name, journals)
                recover_source(settings, source_name)
                return
        except SourceBusy:
            pass
    deadline = time.monotonic() + wait_s
    while _pending(journals):
        if time.monotonic() > deadline:
            raise LandingIncomplete(
                f"source {source_name!r}: a running lander or extract has been renaming a "
                f"batch for more than {wait_s:g}s ({_pending(journals)[0]}); compute "
                "refuses to read a half-written landing zone; retry when that run is done"
            )
        time.sleep(0.2)


def _pending(journals: LakePath) -> list[LakePath]:
    return journals.glob("*.json")


def _check_journals(source_name: str, journals: LakePath) -> None:
    """Every file a journal moves still exists, as its temp file or already at its final name;
    otherwise rolling forward would silently leave the batch incomplete."""
    for journal in _pending(journals):
        for temp, final in read_journal(journal)[0]:
            if not (temp.exists() or final.exists()):
                raise LandingIncomplete(
                    f"source {source_name!r}: journal {journal.name} moves {temp} to {final}, "
                    "but neither exists: the batch lost a file; restore it or land the source "
                    "again from the topic"
                )


@contextmanager
def settled_landing(
    settings: Settings, registry: Registry, source_name: str, wait_s: float = LEASE_WAIT_S
) -> Iterator[None]:
    """Hold the source's lease (waiting up to `wait_s` for a running lander or extract) with
    its landing zone recovered: no batch is in flight inside."""
    try:
        lease = acquire_lease(registry, source_name, settings.lease_duration_s, wait_s)
    except SourceBusy as e:
        raise LandingIncomplete(
            f"source {source_name!r}: a lander or extract has held its lease for more than "
            f"{wait_s:g}s ({e}); retry when it is done"
        ) from None
    with lease:
        _check_journals(source_name, landing_dir(settings, source_name) / "_journal")
        recover_source(settings, source_name)
        yield
