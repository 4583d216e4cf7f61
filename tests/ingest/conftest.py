"""Fixtures of the ingestion tests: a fresh topic per test and a source registered on it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from jstore.config import Settings
from jstore.ingest.demo_data import ensure_topic
from jstore.model import EventSource, FieldSpec
from jstore.registry import Registry

PARTITIONS = 3


@pytest.fixture
def topic(settings: Settings) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    ensure_topic(settings, name, PARTITIONS)
    yield name


def purchases_on(topic: str) -> EventSource:
    """The example repo's purchases source, on a topic of its own."""
    return EventSource(
        name="purchases",
        topic=topic,
        timestamp_field="ts",
        schema=[
            FieldSpec(name="user_id", dtype="string"),
            FieldSpec(name="merchant_id", dtype="string"),
            FieldSpec(name="amount", dtype="float64"),
            FieldSpec(name="category", dtype="string"),
            FieldSpec(name="ts", dtype="timestamp"),
        ],
    )


@pytest.fixture
def source(registry: Registry, topic: str) -> EventSource:
    spec = purchases_on(topic)
    registry.register(spec)
    return spec


def purchase(user: str, amount: float, ts: str, merchant: str = "m1") -> bytes:
    return json.dumps(
        {"user_id": user, "merchant_id": merchant, "amount": amount, "category": "books", "ts": ts}
    ).encode()


Send = Callable[[list[tuple[int, bytes]]], None]


@pytest.fixture
def send(settings: Settings, topic: str) -> Iterator[Send]:
    """Send (partition, value) messages to the test's topic, in order, acknowledged."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")

    def _send(messages: list[tuple[int, bytes]]) -> None:
        for partition, value in messages:
            producer.send(topic, value=value, partition=partition)
        producer.flush()

    yield _send
    producer.close()


def send_purchases_then_poison(send: Send, per_partition: int, days: int) -> list[tuple[int, int]]:
    """Send every partition `per_partition - 1` purchases spread over `days` event dates, then
    one message that is not JSON; returns every (partition, offset) sent, in order."""
    send(
        [
            (p, purchase(f"u{i}", float(i), f"2024-05-0{1 + i % days}T10:00:00Z"))
            for i in range(per_partition - 1)
            for p in range(PARTITIONS)
        ]
        + [(p, b"not json") for p in range(PARTITIONS)]
    )
    return [(p, o) for p in range(PARTITIONS) for o in range(per_partition)]
