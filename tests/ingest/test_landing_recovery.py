"""Compute never reads a half-written landing zone: `ensure_landing_complete` finishes what a
killed lander left (as the next lander run would), or refuses with a clear error."""

from __future__ import annotations

import signal

import pytest

from jstore.config import Settings
from jstore.ingest.lander import land
from jstore.ingest.recovery import LandingIncomplete, ensure_landing_complete, settled_landing
from jstore.lake import landing_dir, quarantine_dir
from jstore.model import EventSource
from jstore.registry import Registry
from jstore.registry.leases import SourceBusy, acquire_lease
from tests.ingest.conftest import PARTITIONS, Send, purchase
from tests.ingest.test_lander_crash import every_offset, run_lander_cli

PER_PARTITION = 4
ALL_OFFSETS = [(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)]


def not_parquet(settings: Settings) -> list[str]:
    """Journals and temp files left in the landing zone and the quarantine."""
    roots = (landing_dir(settings, "purchases"), quarantine_dir(settings, "purchases"))
    return sorted(
        p.name for root in roots for p in root.rglob("*") if p.is_file() and p.suffix != ".parquet"
    )


def send_batch(send: Send) -> None:
    send(
        [
            (p, purchase(f"u{i}", float(i), f"2024-05-0{1 + i % 2}T10:00:00Z"))
            for i in range(PER_PARTITION - 1)
            for p in range(PARTITIONS)
        ]
        + [(p, b"not json") for p in range(PARTITIONS)]
    )


@pytest.mark.parametrize("crash_at", ["after_journal", "mid_rename"])
def test_a_batch_killed_while_renaming_is_completed_before_compute_reads(
    settings: Settings, registry: Registry, source: EventSource, send: Send, crash_at: str
) -> None:
    send_batch(send)
    assert run_lander_cli(settings, "purchases", crash_at) == -signal.SIGKILL
    assert len(every_offset(settings, source)) < len(ALL_OFFSETS)  # what a reader saw: half

    ensure_landing_complete(settings, "purchases")

    assert every_offset(settings, source) == ALL_OFFSETS
    assert not_parquet(settings) == []
    rerun = land(settings, registry, "purchases")
    assert (rerun.rows, rerun.quarantined) == (0, 0)
    assert every_offset(settings, source) == ALL_OFFSETS


def test_a_batch_killed_before_its_journal_is_rolled_back_and_landed_by_the_next_run(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send_batch(send)
    assert run_lander_cli(settings, "purchases", "after_write") == -signal.SIGKILL
    assert not_parquet(settings) != []  # the batch's temp files

    ensure_landing_complete(settings, "purchases")

    assert (every_offset(settings, source), not_parquet(settings)) == ([], [])
    rerun = land(settings, registry, "purchases")
    assert rerun.rows + rerun.quarantined == len(ALL_OFFSETS)
    assert every_offset(settings, source) == ALL_OFFSETS


def test_a_running_lander_without_a_pending_rename_is_complete(
    settings: Settings, registry: Registry
) -> None:
    landing_dir(settings, "purchases").mkdir(parents=True)
    with acquire_lease(registry, "purchases", settings.lease_duration_s):
        ensure_landing_complete(settings, "purchases", wait_s=0.5)


def test_a_rename_that_stays_pending_under_a_running_lander_is_refused(
    settings: Settings, registry: Registry
) -> None:
    landing = landing_dir(settings, "purchases")
    (landing / "_journal").mkdir(parents=True)
    (landing / "_journal" / "0a1b.json").write_text('{"moves": [], "deletes": []}')
    with (
        acquire_lease(registry, "purchases", settings.lease_duration_s),
        pytest.raises(LandingIncomplete) as refused,
    ):
        ensure_landing_complete(settings, "purchases", wait_s=0.5)
    assert str(refused.value).startswith(
        "source 'purchases': a running lander or extract has been renaming a batch for more "
        "than 0.5s ("
    )


def test_a_journal_whose_file_is_gone_is_refused(settings: Settings, registry: Registry) -> None:
    landing = landing_dir(settings, "purchases")
    (landing / "_journal").mkdir(parents=True)
    (landing / "_journal" / "0a1b.json").write_text(
        '{"moves": [["/nowhere/.t-0-0-3.parquet.tmp", "/nowhere/t-0-0-3.parquet"]], "deletes": []}'
    )
    with pytest.raises(LandingIncomplete) as refused:
        ensure_landing_complete(settings, "purchases")
    assert str(refused.value) == (
        "source 'purchases': journal 0a1b.json moves /nowhere/.t-0-0-3.parquet.tmp to "
        "/nowhere/t-0-0-3.parquet, but neither exists: the batch lost a file; restore it or "
        "land the source again from the topic"
    )


def test_settled_landing_recovers_a_killed_batch_and_holds_the_lease(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send_batch(send)
    assert run_lander_cli(settings, "purchases", "mid_rename") == -signal.SIGKILL

    with settled_landing(settings, registry, "purchases"):
        assert every_offset(settings, source) == ALL_OFFSETS
        with pytest.raises(SourceBusy):
            land(settings, registry, "purchases")


def test_settled_landing_refuses_after_waiting_for_a_running_lander(
    settings: Settings, registry: Registry
) -> None:
    with (
        acquire_lease(registry, "purchases", settings.lease_duration_s) as held,
        pytest.raises(LandingIncomplete) as refused,
        settled_landing(settings, registry, "purchases", wait_s=0.5),
    ):
        pass
    assert str(refused.value).startswith(
        "source 'purchases': a lander or extract has held its lease for more than 0.5s "
        f"(source 'purchases': another lander or extract holds its lease ({held.holder}, "
        "token 1) until "
    )
