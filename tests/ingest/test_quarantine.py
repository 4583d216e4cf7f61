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

LONG_INTEGER = "9" * 5000
"""More digits than Python converts to an int (its limit is 4300): it stopped the lander."""
GOOD = {"user_id": "u1", "merchant_id": "m1", "amount": 5.0, "category": "books"}


def event(**fields) -> bytes:
    """A good event with `fields` replaced; LONG_INTEGER is written as a JSON integer."""
    text = json.dumps({**GOOD, "ts": "2024-05-01T10:00:00Z", **fields})
    return text.replace(f'"{LONG_INTEGER}"', LONG_INTEGER).encode()


BAD_EVENTS: list[tuple[bytes, str]] = [
    (
        b'{"user_id": "u1", "amount": 5',
        "not JSON: Expecting ',' delimiter: line 1 column 30 (char 29)",
    ),
    (
        b"\xff\xfe not utf-8",
        "not UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    ),
    (b"[1, 2]", "not a JSON object: array"),
    (b"", "not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"[" * 5000 + b"]" * 5000, "not JSON: nested too deeply"),
    (
        '{"user_id": "\ud800"}'.encode("utf-8", "surrogatepass"),
        "not UTF-8: 'utf-8' codec can't decode byte 0xed in position 13: invalid continuation byte",
    ),
    (event(amount=LONG_INTEGER), "field 'amount': inf is not a finite float64"),
    (event(amount=float("nan")), "field 'amount': nan is not a finite float64"),
    (event(amount=float("-inf")), "field 'amount': -inf is not a finite float64"),
    (
        event(user_id="u\x00"),
        "field 'user_id': holds U+0000 (NUL, which PostgreSQL text cannot hold) at index 1",
    ),
    (event(user_id="\udc80x"), "field 'user_id': holds U+DC80 (a lone surrogate) at index 0"),
    (event(user_id=["u1"]), "field 'user_id': expected string, got array"),
    (event(user_id={"id": "u1"}), "field 'user_id': expected string, got object"),
    (
        event(ts="2024-05-01T10:00:00Z")[:-1] + b', "ts": "2024-05-02T10:00:00Z"}',
        "field 'ts' given twice",
    ),
    (
        event(ts="0001-01-01T00:00:00+01:00"),
        "field 'ts': timestamp '0001-01-01T00:00:00+01:00' is outside 0001..9999 once in UTC",
    ),
    (
        event(ts="2024-05-01T10:00:00Z" + "0" * 100),
        "field 'ts': unparsable timestamp '2024-05-01T10:00:00Z" + "0" * 40 + "'… (120 characters)",
    ),
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
