"""Bad events go to the quarantine with their raw bytes and the exact reason; never stop a run."""

from __future__ import annotations

import json

from jstore.config import Settings
from jstore.ingest.lander import land
from jstore.ingest.landing import read_landing
from jstore.ingest.quarantine import read_quarantine
from jstore.model import EventSource
from jstore.registry import Registry
from tests.ingest.conftest import Send, purchase

GOOD = {"user_id": "u1", "merchant_id": "m1", "amount": 5.0, "category": "books"}


def event(**fields) -> bytes:
    return json.dumps({**GOOD, "ts": "2024-05-01T10:00:00Z", **fields}).encode()


BAD_EVENTS: list[tuple[bytes, str]] = [
    (
        b'{"user_id": "u1", "amount": 5',
        "not JSON: Expecting ',' delimiter: line 1 column 30 (char 29)",
    ),
    (
        b"\xff\xfe not utf-8",
        "not UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    ),
    (b"[1, 2]", "not a JSON object: list"),
    (json.dumps({**GOOD}).encode(), "missing field 'ts'"),
    (event(amount="5.0"), "field 'amount': expected float64, got string"),
    (event(amount=True), "field 'amount': expected float64, got boolean"),
    (event(user_id=17), "field 'user_id': expected string, got integer"),
    (event(ts="tomorrow"), "field 'ts': unparsable timestamp 'tomorrow'"),
    (event(ts=1714557600), "field 'ts': expected timestamp, got integer"),
    (event(ts=None), "field 'ts': null timestamp"),
    (
        event(ts="1970-01-01T00:00:00Z"),
        "field 'ts': absurd timestamp 1970-01-01T00:00:00+00:00 (before 2000-01-01 or more "
        "than 1 day after landing)",
    ),
    (
        event(ts="2999-01-01T00:00:00Z"),
        "field 'ts': absurd timestamp 2999-01-01T00:00:00+00:00 (before 2000-01-01 or more "
        "than 1 day after landing)",
    ),
]


def test_each_kind_of_bad_event_is_quarantined_with_its_reason(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send([(0, purchase("u0", 1.0, "2024-05-01T09:00:00Z"))])
    send([(0, raw) for raw, _ in BAD_EVENTS])
    send([(1, purchase("u9", 2.0, "2024-05-01T11:00:00Z")), (1, b"oops")])

    result = land(settings, registry, "purchases")

    quarantined = read_quarantine(settings, "purchases").to_pylist()
    assert [(q["_partition"], q["_offset"], q["raw"], q["reason"]) for q in quarantined] == [
        (0, offset, raw, reason) for offset, (raw, reason) in enumerate(BAD_EVENTS, start=1)
    ] + [(1, 1, b"oops", "not JSON: Expecting value: line 1 column 1 (char 0)")]
    assert {q["_topic"] for q in quarantined} == {source.topic}
    landed = read_landing(settings, source).to_pylist()
    assert sorted((r["_partition"], r["_offset"], r["user_id"]) for r in landed) == [
        (0, 0, "u0"),
        (1, 0, "u9"),
    ]
    assert (result.rows, result.quarantined) == (2, len(BAD_EVENTS) + 1)
    run = registry.get_run(result.run_id)
    assert run.details["quarantined"] == len(BAD_EVENTS) + 1


def test_quarantined_offsets_count_for_resuming(
    settings: Settings, registry: Registry, source: EventSource, send: Send
) -> None:
    send([(2, b"not json")])
    land(settings, registry, "purchases")

    again = land(settings, registry, "purchases")

    assert (again.rows, again.quarantined) == (0, 0)
    assert len(read_quarantine(settings, "purchases")) == 1
