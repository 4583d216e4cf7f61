"""Exactly once under crashes: the lander is SIGKILLed at each step, rerun, and every offset is
landed (or quarantined) exactly once.

The crash comes from the lander's own test hook (jstore/ingest/transaction.py `crash_point`):
with JSTORE_CRASH_AT=<point> the `jstore land` process kills itself with SIGKILL there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.ingest.lander import land
from jstore.ingest.landing import read_landing
from jstore.ingest.quarantine import read_quarantine
from jstore.lake import landing_dir, quarantine_dir
from jstore.model import EventSource
from jstore.registry import Registry
from tests.conftest import lake_env
from tests.ingest.conftest import PARTITIONS, Send, send_purchases_then_poison

CRASH_POINTS = ["before_write", "after_write", "after_journal", "mid_rename", "before_commit"]
JSTORE = Path(sys.executable).parent / "jstore"


def run_lander_cli(settings: Settings, source: str, crash_at: str | None) -> int:
    env = {
        **os.environ,
        "JSTORE_PROJECT": settings.project,
        "JSTORE_MONGO_DB": settings.mongo_db,
        **lake_env(settings),
        "JSTORE_OFFLINE_SCHEMA": settings.offline_schema,
        "JSTORE_REGISTRY_SNAPSHOT": str(settings.registry_snapshot),
    }
    if crash_at:
        env["JSTORE_CRASH_AT"] = crash_at
    return subprocess.run([str(JSTORE), "land", source], env=env, timeout=120).returncode


def every_offset(settings: Settings, source: EventSource) -> list[tuple[int, int]]:
    landed = read_landing(settings, source)
    quarantined = read_quarantine(settings, source.name)
    pairs = [
        (r["_partition"], r["_offset"])
        for table in (landed, quarantined)
        for r in table.select(["_partition", "_offset"]).to_pylist()
    ]
    return sorted(pairs)


def committed_offsets(settings: Settings, topic: str) -> list[int | None]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"jstore-lander.{settings.project}.purchases",
        enable_auto_commit=False,
    )
    try:
        return [consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    finally:
        consumer.close(autocommit=False)


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_crash_at_any_step_loses_nothing_and_lands_nothing_twice(
    settings: Settings, registry: Registry, source: EventSource, send: Send, crash_at: str
) -> None:
    expected = send_purchases_then_poison(send, per_partition=6, days=2)

    assert run_lander_cli(settings, "purchases", crash_at) == -signal.SIGKILL
    assert committed_offsets(settings, source.topic) == [None] * PARTITIONS
    seen_by_readers = every_offset(settings, source)  # temp files are never read
    assert len(set(seen_by_readers)) == len(seen_by_readers)
    assert set(seen_by_readers) <= set(expected)

    rerun = land(settings, registry, "purchases")

    assert every_offset(settings, source) == expected
    leftovers = [
        p
        for root in (landing_dir(settings, "purchases"), quarantine_dir(settings, "purchases"))
        for p in root.rglob("*")
        if p.is_file() and p.suffix != ".parquet"
    ]
    assert leftovers == []
    assert committed_offsets(settings, source.topic) == [len(expected) // PARTITIONS] * PARTITIONS
    assert land(settings, registry, "purchases").rows == 0
    landed_by_rerun = rerun.rows + rerun.quarantined
    rolled_forward = crash_at in ("after_journal", "mid_rename", "before_commit")
    assert landed_by_rerun == (0 if rolled_forward else 18)
    crashed = registry.list_runs(kind="land")[-1]
    assert (crashed.status, crashed.error) == (
        "failed",
        f"the run died before finishing; found by run {rerun.run_id}",
    )
