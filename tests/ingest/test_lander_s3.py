"""The lander on a lake in an S3 bucket (the local moto server): the same layout, quarantine and
exactly-once commit as on a local disk (jstore/ingest/transaction.py, the object store case)."""

from __future__ import annotations

import os
import signal
from datetime import UTC, date, datetime

import pytest

from jstore.config import Settings
from jstore.ingest.lander import land
from jstore.ingest.quarantine import read_quarantine
from jstore.ingest.transaction import LandingTransaction, recover_source
from jstore.lake import landing_dir
from jstore.lake_fs import lake_root
from jstore.model import EventSource
from jstore.registry import Registry
from jstore.registry.leases import LeaseLost, acquire_lease
from tests.ingest.conftest import PARTITIONS, Send, purchase, send_purchases_then_poison
from tests.ingest.test_lander import files, landed_rows
from tests.ingest.test_lander_crash import JSTORE, every_offset, run_lander_cli
from tests.ingest.test_leases import (
    SHORT_LEASE_S,
    _land_when_free,
    lander_process,
    wait_until_stopped,
)


def lake_files(settings: Settings) -> list[str]:
    """Every object of the lake, by its path below the lake's root."""
    return sorted(lake_root(settings).files())


def test_a_topic_lands_in_the_bucket_and_its_poison_messages_in_its_quarantine(
    s3_settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send(
        [
            (0, purchase("u1", 10.0, "2024-05-01T23:59:59Z")),
            (0, b"not json"),
            (1, purchase("u2", 20.5, "2024-05-02T00:00:00Z")),
            (1, purchase("u3", -1, "not a time")),
        ]
    )

    result = land(s3_settings, registry, "purchases")

    assert lake_root(s3_settings).spark_uri.startswith("s3a://lake-")
    assert landed_rows(s3_settings, source) == [
        (0, 0, "u1", 10.0, datetime(2024, 5, 1, 23, 59, 59, tzinfo=UTC), date(2024, 5, 1)),
        (1, 0, "u2", 20.5, datetime(2024, 5, 2, tzinfo=UTC), date(2024, 5, 2)),
    ]
    t = source.topic
    assert files(s3_settings, "purchases") == [
        f"event_date=2024-05-01/{t}-0-0-0.parquet",
        f"event_date=2024-05-02/{t}-1-0-0.parquet",
    ]
    quarantined = read_quarantine(s3_settings, "purchases").to_pylist()
    assert [(r["_partition"], r["_offset"], r["raw"]) for r in quarantined] == [
        (0, 1, b"not json"),
        (1, 1, purchase("u3", -1, "not a time")),
    ]
    assert all(r["reason"] for r in quarantined)
    today = datetime.now(UTC).date().isoformat()
    assert lake_files(s3_settings) == [
        f"landing/purchases/event_date=2024-05-01/{t}-0-0-0.parquet",
        f"landing/purchases/event_date=2024-05-02/{t}-1-0-0.parquet",
        f"quarantine/purchases/ingest_date={today}/{t}-0-1-1.parquet",
        f"quarantine/purchases/ingest_date={today}/{t}-1-1-1.parquet",
    ]
    assert (result.rows, result.quarantined, result.files) == (2, 2, 4)
    assert land(s3_settings, registry, "purchases").rows == 0


@pytest.mark.parametrize("crash_at", ["after_write", "after_journal", "mid_rename"])
def test_a_lander_killed_mid_batch_is_finished_or_undone_by_the_next_run(
    s3_settings: Settings, registry: Registry, source: EventSource, send: Send, crash_at: str
) -> None:
    expected = send_purchases_then_poison(send, per_partition=4, days=2)

    assert run_lander_cli(s3_settings, "purchases", crash_at) == -signal.SIGKILL
    left = lake_files(s3_settings)
    journaled = crash_at != "after_write"
    assert any("/_journal/" in name for name in left) == journaled
    seen_by_readers = every_offset(s3_settings, source)  # temp objects are never read
    assert len(set(seen_by_readers)) == len(seen_by_readers)

    rerun = land(s3_settings, registry, "purchases")

    assert every_offset(s3_settings, source) == expected
    assert [name for name in lake_files(s3_settings) if not name.endswith(".parquet")] == []
    assert [name for name in lake_files(s3_settings) if "/." in name] == []
    assert rerun.rows + rerun.quarantined == (0 if journaled else len(expected))


def test_a_stale_holders_commit_publishes_nothing_in_the_bucket(
    s3_settings: Settings, registry: Registry
) -> None:
    landing = landing_dir(s3_settings, "purchases")
    final = landing / "event_date=2024-05-01" / "t-0-0-9.parquet"
    stale = acquire_lease(registry, "purchases", SHORT_LEASE_S)
    txn = LandingTransaction(landing / "_journal", stale)
    txn.temp_for(final).write_bytes(b"the stale holder's batch")
    assert lake_files(s3_settings) == [
        f"landing/purchases/event_date=2024-05-01/.{final.name}.1.tmp"
    ]

    with acquire_lease(registry, "purchases", 60, wait_s=60):
        recover_source(s3_settings, "purchases")  # what the next holder does first
        with pytest.raises(LeaseLost):
            txn.commit()

    assert lake_files(s3_settings) == []


def test_a_lander_paused_past_its_lease_mid_rename_lands_nothing_twice(
    s3_settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    """Both the paused holder and its successor replay one journal: copies and deletes of the
    same objects, in any interleaving, leave each file once."""
    per_partition = 3
    send(
        [
            (p, purchase(f"u{i}", float(i), "2024-05-01T10:00:00Z"))
            for i in range(per_partition)
            for p in range(PARTITIONS)
        ]
    )
    stale = lander_process(
        s3_settings,
        str(JSTORE),
        "land",
        "purchases",
        pause_at="mid_rename",
        lease_s=SHORT_LEASE_S,
    )
    wait_until_stopped(stale)

    successor = _land_when_free(s3_settings, registry)
    os.kill(stale.pid, signal.SIGCONT)
    _, stderr = stale.communicate(timeout=120)

    assert every_offset(s3_settings, source) == [
        (p, o) for p in range(PARTITIONS) for o in range(per_partition)
    ]
    assert successor.rows == 0  # the journal was the commit: the successor finished it
    assert stale.returncode == 2, stderr
    assert "the lease of token 1 expired and is now token " in stderr
    assert [name for name in lake_files(s3_settings) if not name.endswith(".parquet")] == []
