"""Asking the broker about single offsets: the true end of a partition, and the record at an
offset (to check that the broker still holds the log the landing zone was read from)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from jstore.config import Settings

PROBE_TIMEOUT_S = 30.0
FINGERPRINT_KEY = b"jstore.tail_fingerprint"
"""Parquet metadata of every landed and quarantined file: the fingerprint of its last record."""


class ProbeTimeout(Exception):
    """The broker answered no fetch for a partition in PROBE_TIMEOUT_S."""


def fingerprint(message: Any) -> str:
    """Identifies a Kafka record: its key, value and timestamp (a replaced log differs here)."""
    digest = hashlib.sha256()
    for part in (message.key or b"", message.value or b"", str(message.timestamp).encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:32]


def fetch_at(settings: Settings, positions: dict[Any, int]) -> dict[Any, tuple[Any | None, int]]:
    """For each partition, the record at the offset (None if there is none) and the fetch's
    high watermark."""
    from kafka import KafkaConsumer

    if not positions:
        return {}
    probe = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        enable_auto_commit=False,
        auto_offset_reset="none",
    )
    found: dict[Any, Any] = {}
    received: set[Any] = set()
    try:
        probe.assign(list(positions))
        for tp, offset in positions.items():
            probe.seek(tp, offset)
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while True:
            for tp, messages in probe.poll(timeout_ms=500).items():
                received.add(tp)
                for m in messages:
                    if m.offset == positions[tp]:
                        found[tp] = m
                probe.pause(tp)
            if all(
                tp in received
                or (probe.highwater(tp) is not None and probe.highwater(tp) <= positions[tp])
                for tp in positions
            ):
                break
            if time.monotonic() > deadline:
                raise ProbeTimeout(f"no fetch answer for {sorted(map(str, positions))}")
        return {tp: (found.get(tp), probe.highwater(tp)) for tp in positions}
    finally:
        probe.close(autocommit=False)


def end_offsets(settings: Settings, consumer: Any, tps: list[Any]) -> dict[Any, int]:
    """The end offset (high watermark) of each partition, from a fetch.

    Some Kafka-compatible brokers (tansu 0.6) answer ListOffsets(latest) with the base offset
    of the last record batch plus one, below the end when that batch holds several records.
    A fetch at that offset returns the whole last batch with the true high watermark; on
    Apache Kafka both answers agree.
    """
    listed = consumer.end_offsets(tps)
    fetched = fetch_at(settings, {tp: listed[tp] - 1 for tp in tps if listed[tp] > 0})
    return {tp: max(listed[tp], fetched[tp][1]) if tp in fetched else listed[tp] for tp in tps}
