"""One lander or extract per source, on any number of hosts: the source's lease in the registry
(jstore/registry/leases.py) and the fencing of every commit by its token
(jstore/ingest/transaction.py).

A lease is free, held or expired by the MongoDB server's clock; its token grows with every
holder. A holder whose lease expired and was taken over commits nothing: its temp files are
gone or its fence check refuses, and the landing zone holds every offset exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.ingest.extract import commit_extract, plan_extract
from jstore.ingest.lander import land
from jstore.ingest.transaction import LandingTransaction, recover_source, spark_output_dir
from jstore.lake import landing_dir
from jstore.model import EventSource
from jstore.registry import Registry
from jstore.registry.leases import LeaseLost, SourceBusy, acquire_lease
from tests.conftest import lake_env
from tests.ingest.conftest import PARTITIONS, Send, purchase, send_purchases_then_poison
from tests.ingest.test_lander_crash import JSTORE, every_offset

SHORT_LEASE_S = 1.0
"""A lease that a paused holder outlives quickly."""


def test_a_held_lease_is_refused_and_a_released_one_is_taken_with_a_greater_token(
    settings: Settings, registry: Registry
) -> None:
    first = acquire_lease(registry, "purchases", 60)
    with pytest.raises(SourceBusy) as busy:
        acquire_lease(registry, "purchases", 60)
    assert str(busy.value).startswith(
        f"source 'purchases': another lander or extract holds its lease ({first.holder}, "
        "token 1) until "
    )
    assert str(busy.value).endswith("; try again when it is done")
    first.release()

    second = acquire_lease(registry, "purchases", 60)

    assert (first.token, second.token) == (1, 2)
    first.release()  # a stale holder cannot free its successor's lease
    with pytest.raises(SourceBusy):
        acquire_lease(registry, "purchases", 60)


def test_the_lease_of_a_holder_that_died_on_this_host_is_taken_at_once(
    settings: Settings, registry: Registry
) -> None:
    holder = lander_process(
        settings,
        sys.executable,
        "-c",
        "from jstore.config import Settings; from jstore.registry import Registry; "
        "from jstore.registry.leases import acquire_lease; "
        "print(acquire_lease(Registry(Settings()), 'purchases', 3600).holder)",
    )
    out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err

    taken = acquire_lease(registry, "purchases", 60)

    assert (out.strip(), taken.token) == (f"{taken.holder.rpartition(':')[0]}:{holder.pid}", 2)


def test_an_expired_lease_is_taken_over_and_its_old_holder_is_fenced(
    settings: Settings, registry: Registry
) -> None:
    stale = acquire_lease(registry, "purchases", SHORT_LEASE_S)

    successor = acquire_lease(registry, "purchases", 60, wait_s=60)

    assert successor.token == stale.token + 1
    with pytest.raises(LeaseLost) as lost:
        stale.fence()
    assert str(lost.value) == (
        "source 'purchases': the lease of token 1 expired and is now token 2 of "
        f"{successor.holder}: this run's batch is not committed (the holder that took over "
        "lands it)"
    )
    successor.fence()


def test_a_stale_holders_commit_publishes_nothing(settings: Settings, registry: Registry) -> None:
    landing = landing_dir(settings, "purchases")
    final = landing / "event_date=2024-05-01" / "t-0-0-9.parquet"
    stale = acquire_lease(registry, "purchases", SHORT_LEASE_S)
    txn = LandingTransaction(landing / "_journal", stale)
    txn.temp_for(final).write_bytes(b"the stale holder's batch")

    with acquire_lease(registry, "purchases", 60, wait_s=60):
        recover_source(settings, "purchases")  # what the next holder does first
        with pytest.raises(LeaseLost):
            txn.commit()

    assert sorted(p.name for p in landing.rglob("*") if p.is_file()) == []


def test_a_stale_extracts_swap_replaces_nothing(settings: Settings, registry: Registry) -> None:
    old = (
        landing_dir(settings, "customers")
        / "event_date=2024-05-01"
        / "extract-20240501T000000Z-20240502T000000Z-00000.parquet"
    )
    old.parent.mkdir(parents=True)
    old.write_bytes(b"the landed extract")
    written = spark_output_dir(settings, "customers")
    (written / "event_date=2024-05-01").mkdir(parents=True)
    (written / "event_date=2024-05-01" / "part-00000.parquet").write_bytes(b"the stale job's")
    plan = plan_extract(
        settings, "customers", datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 3, tzinfo=UTC)
    )
    stale = acquire_lease(registry, "customers", SHORT_LEASE_S)

    with acquire_lease(registry, "customers", 60, wait_s=60), pytest.raises(LeaseLost):
        commit_extract(settings, plan, written, stale)

    landed = sorted(p.name for p in landing_dir(settings, "customers").glob("event_date=*/*"))
    assert (plan.replaces, landed) == ([old], [old.name])
    assert old.read_bytes() == b"the landed extract"


def lander_process(
    settings: Settings, *args: str, pause_at: str | None = None, lease_s: float = 60
) -> subprocess.Popen:
    env = {
        **os.environ,
        "JSTORE_PROJECT": settings.project,
        "JSTORE_MONGO_DB": settings.mongo_db,
        **lake_env(settings),
        "JSTORE_OFFLINE_SCHEMA": settings.offline_schema,
        "JSTORE_REGISTRY_SNAPSHOT": str(settings.registry_snapshot),
        "JSTORE_LEASE_DURATION_S": str(lease_s),
    }
    if pause_at:
        env["JSTORE_PAUSE_AT"] = pause_at
    return subprocess.Popen(
        list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


LAND_UNTIL_CAUGHT_UP = """
import json, sys, time
from jstore.config import Settings
from jstore.ingest.lander import land
from jstore.registry import Registry
from jstore.registry.leases import SourceBusy

settings, runs, busy = Settings(), 0, 0
with Registry(settings) as registry:
    while True:
        try:
            result = land(settings, registry, "purchases", max_records=int(sys.argv[1]))
        except SourceBusy:
            busy += 1
            time.sleep(0.05)
            continue
        runs += 1
        if result.rows + result.quarantined == 0:
            break
print(json.dumps({"runs": runs, "busy": busy}))
"""


def test_two_landers_at_once_land_every_message_exactly_once(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    per_partition = 12
    send_purchases_then_poison(send, per_partition, days=3)

    landers = [
        lander_process(settings, sys.executable, "-c", LAND_UNTIL_CAUGHT_UP, "5") for _ in range(2)
    ]
    outcomes = [lander.communicate(timeout=300) for lander in landers]

    assert [lander.returncode for lander in landers] == [0, 0], outcomes
    assert every_offset(settings, source) == [
        (p, o) for p in range(PARTITIONS) for o in range(per_partition)
    ]
    runs = [json.loads(out)["runs"] for out, _ in outcomes]
    landed = registry.list_runs(kind="land", limit=1000)
    assert (len(landed), {r.status for r in landed}) == (sum(runs), {"success"})
    assert sum(r.rows for r in landed) == PARTITIONS * (per_partition - 1)


def wait_until_stopped(process: subprocess.Popen) -> None:
    """Until the process stopped itself (SIGSTOP at its pause point)."""
    _, status = os.waitpid(process.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the lander ended before its pause point: {status}"


@pytest.mark.parametrize("paused_at", ["after_write", "after_fence", "mid_rename"])
def test_a_lander_paused_past_its_lease_is_refused_and_the_next_one_lands_everything_once(
    settings: Settings, registry: Registry, source: EventSource, send: Send, paused_at: str
) -> None:
    per_partition = 5
    send(
        [
            (p, purchase(f"u{i}", float(i), "2024-05-01T10:00:00Z"))
            for i in range(per_partition)
            for p in range(PARTITIONS)
        ]
    )
    stale = lander_process(
        settings, str(JSTORE), "land", "purchases", pause_at=paused_at, lease_s=SHORT_LEASE_S
    )
    wait_until_stopped(stale)

    successor = _land_when_free(settings, registry)
    os.kill(stale.pid, signal.SIGCONT)
    _, stderr = stale.communicate(timeout=120)

    assert every_offset(settings, source) == [
        (p, o) for p in range(PARTITIONS) for o in range(per_partition)
    ]
    rolled_forward = paused_at == "mid_rename"  # its journal was the commit: the successor ends it
    assert successor.rows == (0 if rolled_forward else PARTITIONS * per_partition)
    assert stale.returncode == 2, stderr
    assert "the lease of token 1 expired and is now token " in stderr
    stale_run = registry.list_runs(kind="land", limit=10)[-1]
    assert stale_run.status == "failed"
    assert stale_run.error is not None and stale_run.error.startswith("LeaseLost: ")
    leftovers = [p.name for p in Path(settings.lake_uri).rglob("*") if p.suffix != ".parquet"]
    assert [name for name in leftovers if name.startswith(".")] == []
    assert land(settings, registry, "purchases").rows == 0


def _land_when_free(settings: Settings, registry: Registry):
    """`jstore land` as soon as the paused holder's lease expired."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return land(settings, registry, "purchases")
        except SourceBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
