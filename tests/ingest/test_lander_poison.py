"""Against the real broker: a poison message between good ones is quarantined and the lander
goes on past it, in the same run and the next; a message larger than the fetch size lands."""

from __future__ import annotations

import json

from jstore.config import Settings
from jstore.ingest.lander import MAX_PARTITION_FETCH_BYTES, land
from jstore.ingest.landing import read_landing
from jstore.ingest.quarantine import read_quarantine
from jstore.model import EventSource
from jstore.registry import Registry
from tests.ingest.conftest import Send, purchase

POISON = (
    b'{"user_id": "u1", "merchant_id": "m1", "amount": ' + b"9" * 5000 + b', "category": "x", '
    b'"ts": "2024-05-01T10:00:00Z"}'
)
"""An integer of 5,000 digits: Python refuses to convert it (ValueError), which stopped the
lander at this offset on every run."""


def landed(settings: Settings, source: EventSource) -> list[tuple[int, int, str]]:
    rows = read_landing(settings, source).to_pylist()
    return sorted((r["_partition"], r["_offset"], r["user_id"]) for r in rows)


def test_a_poison_message_is_quarantined_and_the_lander_goes_past_it(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send(
        [
            (0, purchase("u1", 1.0, "2024-05-01T10:00:00Z")),
            (0, POISON),
            (0, purchase("u2", 2.0, "2024-05-01T11:00:00Z")),
        ]
    )

    first = land(settings, registry, "purchases")
    send([(0, POISON), (0, purchase("u3", 3.0, "2024-05-01T12:00:00Z"))])
    second = land(settings, registry, "purchases")
    third = land(settings, registry, "purchases")

    assert [(r.rows, r.quarantined) for r in (first, second, third)] == [(2, 1), (1, 1), (0, 0)]
    assert landed(settings, source) == [(0, 0, "u1"), (0, 2, "u2"), (0, 4, "u3")]
    assert [
        (q["_offset"], q["raw"], q["reason"])
        for q in read_quarantine(settings, "purchases").to_pylist()
    ] == [
        (1, POISON, "field 'amount': inf is not a finite float64"),
        (3, POISON, "field 'amount': inf is not a finite float64"),
    ]


def test_a_message_larger_than_the_fetch_size_lands(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    from kafka import KafkaProducer

    padding = "p" * (MAX_PARTITION_FETCH_BYTES + 1024)
    large = json.dumps(
        {
            "user_id": "big",
            "merchant_id": "m1",
            "amount": 9.0,
            "category": "books",
            "ts": "2024-05-01T10:30:00Z",
            "note": padding,
        }
    ).encode()
    send([(1, purchase("u1", 1.0, "2024-05-01T10:00:00Z"))])
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", max_request_size=2 * len(large)
    )
    producer.send(source.topic, value=large, partition=1)
    producer.flush()
    producer.close()

    first = land(settings, registry, "purchases")
    send([(1, purchase("u2", 2.0, "2024-05-01T11:00:00Z"))])
    second = land(settings, registry, "purchases")  # checks the large record is still the tail

    assert len(large) > MAX_PARTITION_FETCH_BYTES
    assert (first.rows, second.rows, first.quarantined + second.quarantined) == (2, 1, 0)
    assert landed(settings, source) == [(1, 0, "u1"), (1, 1, "big"), (1, 2, "u2")]
