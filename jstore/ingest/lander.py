"""The Kafka lander: one bounded batch of a source's topic into the landing zone, exactly once.

A run takes the source's lease (jstore/registry/leases.py), recovers any batch a crash left
half-done, and reads where to resume from the landing zone's file names
(jstore/ingest/offsets.py). It assigns every
partition of the topic explicitly (no group rebalancing), seeks right after the highest landed
offset, and reads up to the end offsets it saw at start (or `max_records`). Each batch of
messages is parsed (jstore/ingest/events.py); good rows are written per partition and event
date, bad ones to the quarantine, all in one journaled transaction. Only afterwards are the
group offsets committed, for lag monitoring; nothing reads them back.

Late events land in the partition of their event date like any other; those that change a
published interval of a view of the source are counted per interval in the registry
(jstore/ingest/late.py), for `jstore recompute` (jstore/late_events.py).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import pyarrow.parquet as pq
from pydantic import BaseModel

from jstore import progress
from jstore.config import Settings
from jstore.ingest.batch import land_batch
from jstore.ingest.events import EventParser
from jstore.ingest.offsets import (
    highest_landed,
    read_generations,
    start_generation,
)
from jstore.ingest.probe import FINGERPRINT_KEY, end_offsets, fetch_at, fingerprint
from jstore.ingest.runs import fail_dead_runs
from jstore.ingest.transaction import crash_point, recover_source
from jstore.lake import landing_dir, quarantine_dir
from jstore.lake_fs import LakePath
from jstore.model import EventSource
from jstore.registry import Registry, RunRecord, new_run_id
from jstore.registry.leases import Lease, acquire_lease

log = logging.getLogger(__name__)

BATCH_RECORDS = 100_000
"""Messages per landed batch: larger batches make fewer, larger files."""
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024
"""Bytes asked of one partition per fetch. Not a limit on message size: a broker answers a
fetch with at least one whole record batch however large (Kafka >= 0.10.1, tansu), and
kafka-python returns it, so a larger message is landed too (tests/ingest/test_lander_poison.py)."""
FETCH_MAX_BYTES = 64 * 1024 * 1024
"""Bytes asked per fetch over all partitions: bounds the lander's read buffer, not messages."""
IDLE_TIMEOUT_S = 30.0
"""A run gives up when the broker sends nothing for this long before the end offsets."""


class LandingError(Exception):
    """The lander cannot run safely (unknown topic, a broker that lost its log, ...)."""


class BrokerLogLost(LandingError):
    """The broker no longer holds the log the landing zone was read from (its end offset is
    below the next offset to land, or the last landed record differs): it lost or replaced it."""


class PartitionRange(BaseModel):
    """What a run did on one partition, in landing-zone offsets (see offsets.py, generations)."""

    first: int | None = None
    last: int | None = None
    end: int
    """The end offset at the start of the run (the bound of a run), as a landing offset."""
    generation: int = 0
    lost_to_retention: list[int] | None = None
    """[first, last] broker offsets deleted by the broker before they were landed."""


class LandingResult(BaseModel):
    run_id: str
    source: str
    topic: str
    rows: int
    quarantined: int
    late: int
    """Landed events that change a published interval of a view of the source (counted per
    interval in the registry: jstore/registry/late.py)."""
    late_since: datetime | None = None
    """The earliest late event time."""
    partitions: dict[int, PartitionRange]
    files: int
    new_generations: list[int] = []
    duration_s: float


def land(
    settings: Settings,
    registry: Registry,
    source: str,
    max_records: int | None = None,
    new_generation: bool = False,
) -> LandingResult:
    """Land one bounded batch of `source`'s topic; see the module docstring.

    `new_generation=True` accepts a broker that lost its log: its partitions start a new
    generation instead of the run failing with BrokerLogLost.
    """
    spec = registry.get_source(source)
    if not isinstance(spec, EventSource):
        raise LandingError(f"source: {source!r} is a table source; use `jstore extract`")
    if max_records is not None and max_records < 1:
        raise LandingError(f"max_records: must be at least 1, got {max_records}")
    with acquire_lease(registry, source, settings.lease_duration_s) as lease:
        recover_source(settings, source)
        run = RunRecord(run_id=new_run_id("land"), kind="land", subject=source)
        fail_dead_runs(registry, "land", source, run.run_id)
        with registry.run(run):
            result = _Run(settings, registry, spec, run.run_id, new_generation, lease).execute(
                max_records
            )
            run.rows = result.rows
            run.details = result.model_dump(mode="json", exclude={"run_id", "source"})
        return result


def _same_record(record: Any | None, landed_file: LakePath) -> bool:
    """Whether `record` is the last record of `landed_file` (files without a fingerprint, and
    so without a way to tell, count as the same)."""
    schema = pq.read_schema(landed_file.path, filesystem=landed_file.fs)
    recorded = (schema.metadata or {}).get(FINGERPRINT_KEY)
    return recorded is None or (record is not None and fingerprint(record).encode() == recorded)


class _Run:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        source: EventSource,
        run_id: str,
        new_generation: bool,
        lease: Lease,
    ):
        self.settings = settings
        self.lease = lease
        self.source = source
        self.run_id = run_id
        self.new_generation = new_generation
        self.parser = EventParser(source)
        self.landing = landing_dir(settings, source.name)
        self.registry = registry
        self.rows = self.quarantined = self.late = self.files = 0
        self.late_since: datetime | None = None
        self.bases: dict[int, int] = {}
        self.ranges: dict[int, PartitionRange] = {}
        self.new_generations: list[int] = []

    def execute(self, max_records: int | None) -> LandingResult:
        from kafka import TopicPartition
        from kafka.errors import KafkaTimeoutError
        from kafka.structs import OffsetAndMetadata

        started = time.monotonic()
        topic = self.source.topic
        try:
            consumer = self._consumer()
        except KafkaTimeoutError:
            raise LandingError(
                f"kafka_bootstrap: no Kafka broker answers at {self.settings.kafka_bootstrap}"
            ) from None
        try:
            numbers = consumer.partitions_for_topic(topic)
            if not numbers:
                raise LandingError(f"topic: {topic!r} of source {self.source.name!r} not found")
            tps = [TopicPartition(topic, p) for p in sorted(numbers)]
            consumer.assign(tps)
            ends = end_offsets(self.settings, consumer, tps)
            begins = consumer.beginning_offsets(tps)
            landed = highest_landed(
                topic, self.landing, quarantine_dir(self.settings, self.source.name)
            )
            last_landed = {
                tp: landed[tp.partition][0]
                - read_generations(self.landing, topic, tp.partition).base
                for tp in tps
                if tp.partition in landed
            }
            tails = fetch_at(
                self.settings,
                {tp: last for tp, last in last_landed.items() if begins[tp] <= last < ends[tp]},
            )
            for tp in tps:
                tail = tails.get(tp, (None, 0))[0]
                resume = self._resume_at(tp.partition, landed, begins[tp], ends[tp], tail)
                consumer.seek(tp, resume)
            with progress.task(f"land {self.source.name}", unit="messages"):
                self._consume(consumer, {tp: ends[tp] for tp in tps}, max_records)
            crash_point("before_commit")
            consumer.commit(
                {tp: OffsetAndMetadata(min(consumer.position(tp), ends[tp]), "", -1) for tp in tps}
            )
        finally:
            consumer.close(autocommit=False)
        return LandingResult(
            run_id=self.run_id,
            source=self.source.name,
            topic=topic,
            rows=self.rows,
            quarantined=self.quarantined,
            late=self.late,
            late_since=self.late_since,
            partitions=self.ranges,
            files=self.files,
            new_generations=self.new_generations,
            duration_s=round(time.monotonic() - started, 3),
        )

    def _consumer(self) -> Any:
        from kafka import KafkaConsumer

        return KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap.split(","),
            group_id=f"jstore-lander.{self.settings.project}.{self.source.name}",
            enable_auto_commit=False,
            auto_offset_reset="none",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_session_timeout_ms // 3,
            max_poll_records=10_000,
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        )

    def _resume_at(
        self,
        partition: int,
        landed: dict[int, tuple[int, LakePath]],
        begin: int,
        end: int,
        tail: Any | None,
    ) -> int:
        """The broker offset to read next; checks the broker still has the log we landed: its
        end is not below the next offset, and the record at the last landed offset (`tail`,
        when still in the log) is the one landed."""
        topic = self.source.topic
        generations = read_generations(self.landing, topic, partition)
        last, last_file = landed.get(partition, (-1, None))
        next_landing = last + 1
        base = generations.base
        resume = next_landing - base
        reason = None
        if end < resume:
            reason = (
                f"{topic}[{partition}]: the broker's end offset {end} is below the next offset "
                f"to land {resume}: the broker lost its log (restart of a memory broker, or a "
                "re-created topic)"
            )
        elif last_file is not None and begin <= resume - 1 and not _same_record(tail, last_file):
            reason = (
                f"{topic}[{partition}]: the record at offset {resume - 1} is not the one "
                "landed there: the broker's log was replaced (restart of a memory broker, or "
                "a re-created topic)"
            )
        if reason is not None:
            if not self.new_generation:
                raise BrokerLogLost(
                    f"{reason}; run again with --new-generation to land its new log as a new "
                    f"generation (landing offsets continue from {next_landing})"
                )
            generations = start_generation(self.landing, topic, partition, next_landing, reason)
            base, resume = next_landing, 0
            self.new_generations.append(partition)
        self.bases[partition] = base
        self.ranges[partition] = PartitionRange(end=base + end, generation=generations.number)
        if begin > resume:
            log.warning(
                "%s[%d]: offsets %d..%d expired before landing", topic, partition, resume, begin - 1
            )
            self.ranges[partition].lost_to_retention = [resume, begin - 1]
            resume = begin
        return resume

    def _consume(self, consumer: Any, ends: dict[Any, int], max_records: int | None) -> None:
        remaining = {tp for tp, end in ends.items() if consumer.position(tp) < end}
        progress.expect(sum(ends[tp] - consumer.position(tp) for tp in remaining), max_records)
        budget = max_records
        batch: list[Any] = []
        idle_since = time.monotonic()
        while remaining and (budget is None or budget > 0):
            want = BATCH_RECORDS - len(batch)
            if budget is not None:
                want = min(want, budget)
            polled = consumer.poll(timeout_ms=500, max_records=want)
            if not any(polled.values()):
                self._check_progress(consumer, remaining, ends, idle_since)
            else:
                idle_since = time.monotonic()
            for tp, messages in polled.items():
                kept = [m for m in messages if m.offset < ends[tp]]
                batch.extend(kept)
                progress.advance(len(kept))
                if budget is not None:
                    budget -= len(kept)
            for tp in list(remaining):
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if len(batch) >= BATCH_RECORDS:
                self._land_batch(batch)
                batch = []
        self._land_batch(batch)

    def _check_progress(
        self, consumer: Any, remaining: set[Any], ends: dict[Any, int], idle_since: float
    ) -> None:
        if time.monotonic() - idle_since > IDLE_TIMEOUT_S:
            behind = {str(tp): (consumer.position(tp), ends[tp]) for tp in remaining}
            raise LandingError(f"no messages for {IDLE_TIMEOUT_S:.0f}s before the end: {behind}")

    def _land_batch(self, messages: list[Any]) -> None:
        if not messages:
            return
        for m in messages:
            rng = self.ranges[m.partition]
            rng.first = self.bases[m.partition] + m.offset if rng.first is None else rng.first
            rng.last = self.bases[m.partition] + m.offset
        landed = land_batch(
            self.settings, self.registry, self.parser, messages, self.bases, self.lease
        )
        self.rows += landed.rows
        self.quarantined += landed.quarantined
        self.files += landed.files
        self.late += landed.late
        if landed.late_since is not None:
            self.late_since = min(filter(None, (self.late_since, landed.late_since)))
