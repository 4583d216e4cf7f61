"""Property tests of the event parser: whatever bytes a message holds, it is a row that every
store can hold, or a BadEvent with a reason; and a valid event comes out exactly as sent.

Generated inputs: arbitrary bytes; JSON objects whose fields hold extreme numbers (integers of
thousands of digits, int64 bounds, 1e999, NaN), deep nesting, any Unicode (NUL, lone
surrogates as escapes and as raw CESU bytes), duplicate keys, and timestamps in every format
(ISO-8601 with any offset in years 1..9999, basic format, dates, RFC 2822, epoch numbers).
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jstore.config import Settings
from jstore.ingest.events import (
    EARLIEST_EVENT,
    FUTURE_TOLERANCE,
    STORABLE_TIMESTAMPS,
    BadEvent,
    EventParser,
)
from jstore.model import EventSource, FieldSpec

INGESTED_AT = datetime(2026, 1, 1, tzinfo=UTC)
SOURCE = EventSource(
    name="everything",
    topic="everything",
    timestamp_field="ts",
    schema=[
        FieldSpec(name="s", dtype="string"),
        FieldSpec(name="n", dtype="int64"),
        FieldSpec(name="x", dtype="float64"),
        FieldSpec(name="b", dtype="bool"),
        FieldSpec(name="t", dtype="timestamp"),
        FieldSpec(name="ts", dtype="timestamp"),
    ],
)
PARSER = EventParser(SOURCE)
FIELDS = [f.name for f in SOURCE.schema_]

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
"""Any code points, NUL and lone surrogates included."""

offsets = (
    st.none()
    | st.just(UTC)
    | st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
)
any_datetime = st.datetimes(
    datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59), timezones=offsets
)


def _formats(d: datetime) -> list[str]:
    naive = d.replace(tzinfo=None)
    return [
        d.isoformat(),
        d.isoformat(sep=" "),
        d.isoformat(timespec="seconds"),
        naive.isoformat() + "Z",
        naive.isoformat() + ".1234567Z",
        naive.strftime("%Y%m%dT%H%M%S") + "Z",
        naive.date().isoformat(),
        naive.strftime("%d/%m/%Y %H:%M"),
        email.utils.format_datetime(d if d.tzinfo else d.replace(tzinfo=UTC)),
        f"{naive.isoformat()}+24:00",
        f" {d.isoformat()}\x00",
    ]


recent_datetime = st.datetimes(datetime(1999, 12, 31), datetime(2026, 1, 3), timezones=offsets)
timestamp_text = st.tuples(any_datetime | recent_datetime, st.integers(0, 10)).map(
    lambda p: _formats(p[0])[p[1]]
)
timestamp_token = timestamp_text.map(json.dumps) | st.integers(-(10**13), 10**13).map(str)

long_integer = st.tuples(
    st.sampled_from(["", "-"]), st.sampled_from("123456789"), st.integers(1, 6000)
).map(lambda p: p[0] + p[1] * p[2])
number_token = st.one_of(
    st.integers().map(str),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1]).map(str),
    long_integer,
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e999", "-1e999", "1e-999", "1E400", "0.0", "-0.0", "5e-324"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]),
)
string_token = st.tuples(any_text, st.booleans()).map(lambda p: json.dumps(p[0], ensure_ascii=p[1]))
nesting_token = st.integers(1, 1500).map(lambda depth: "[" * depth + "]" * depth)
leaf_token = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    number_token,
    string_token,
    timestamp_token,
    nesting_token,
)


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"


json_token = st.recursive(
    leaf_token,
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
        | st.lists(st.tuples(any_text, inner), max_size=4).map(_object)
    ),
    max_leaves=10,
)

extreme_token = {
    "s": string_token,
    "n": number_token,
    "x": number_token,
    "b": st.sampled_from(["true", "false"]),
    "t": timestamp_token,
    "ts": timestamp_token,
}
plain_token = {
    "s": st.text(max_size=10).map(json.dumps),
    "n": st.integers(-1000, 1000).map(str),
    "x": st.floats(-1e6, 1e6).map(repr),
    "b": st.sampled_from(["true", "false", "null"]),
    "t": st.just("null"),
    "ts": st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00"]).map(json.dumps),
}


@st.composite
def event_text(draw: st.DrawFn) -> str:
    """A JSON object over the schema's fields: each absent, any JSON, well typed but extreme,
    or plain; plus extra fields and, at times, a duplicate key."""
    pairs = []
    for name in FIELDS:
        choice = draw(st.integers(0, 19))
        if choice == 0:
            continue
        if choice == 1:
            token = draw(json_token)
        elif choice < 5:
            token = draw(extreme_token[name])
        else:
            token = draw(plain_token[name])
        pairs.append((name, token))
    pairs += draw(st.lists(st.tuples(any_text, json_token), max_size=3))
    if pairs and draw(st.integers(0, 19)) == 0:
        pairs.append(draw(st.sampled_from(pairs)))
    return _object(pairs)


event_bytes = event_text().map(lambda text: text.encode("utf-8", "surrogatepass"))


def parsed(value: bytes) -> dict[str, Any] | None:
    """The row of `value`, or None when it is a bad event with a reason."""
    try:
        return PARSER.parse(value, INGESTED_AT)
    except BadEvent as e:
        reason = str(e)
        assert reason and reason.isprintable()
        reason.encode("utf-8")  # a reason is storable text too
        return None


def assert_storable(row: dict[str, Any]) -> None:
    """What every store downstream can hold: Parquet with the landing schema, Spark, PostgreSQL."""
    for name in ("s",):
        if row[name] is not None:
            assert "\x00" not in row[name]
            row[name].encode("utf-8")
    assert row["n"] is None or (type(row["n"]) is int and -(2**63) <= row["n"] < 2**63)
    assert row["x"] is None or (type(row["x"]) is float and math.isfinite(row["x"]))
    for name in ("t", "ts"):
        if row[name] is not None:
            assert row[name].tzinfo is UTC
            assert STORABLE_TIMESTAMPS[0] <= row[name] <= STORABLE_TIMESTAMPS[1]
    assert EARLIEST_EVENT <= row["ts"] <= INGESTED_AT + FUTURE_TOLERANCE
    schema = PARSER.landing_schema()
    pa.table({f: [row[f]] for f in FIELDS}, schema=pa.schema([schema.field(f) for f in FIELDS]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_a_row_or_a_bad_event(value: bytes) -> None:
    row = parsed(value)
    if row is not None:
        assert_storable(row)


@settings(max_examples=300, deadline=None)
@given(event_bytes)
def test_any_json_object_is_a_storable_row_or_a_bad_event(value: bytes) -> None:
    row = parsed(value)
    if row is not None:
        assert_storable(row)


@pytest.fixture(scope="module")
def postgres() -> Iterator[psycopg.Connection]:
    with psycopg.connect(Settings().postgres_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE landed (s text, n bigint, x double precision, b boolean, "
            "t timestamptz, ts timestamptz NOT NULL)"
        )
        yield conn


@settings(max_examples=150, deadline=None)
@given(value=event_bytes)
def test_every_row_fits_postgresql_unchanged(postgres: psycopg.Connection, value: bytes) -> None:
    row = parsed(value)
    if row is None:
        return
    values = [row[f] for f in FIELDS]
    stored = postgres.execute(
        "INSERT INTO landed VALUES (%s, %s, %s, %s, %s, %s) RETURNING *", values
    ).fetchone()
    assert list(stored) == values


valid_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters=["\x00"]))
valid_ts = st.datetimes(
    EARLIEST_EVENT.replace(tzinfo=None),
    (INGESTED_AT + FUTURE_TOLERANCE).replace(tzinfo=None),
    timezones=st.just(UTC),
).flatmap(lambda d: offsets.filter(lambda tz: tz is not None).map(lambda tz: d.astimezone(tz)))


@settings(max_examples=200, deadline=None)
@given(
    s=st.none() | valid_text,
    n=st.none() | st.integers(-(2**63), 2**63 - 1),
    x=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    b=st.none() | st.booleans(),
    t=st.none() | valid_ts,
    ts=valid_ts,
)
def test_a_valid_event_comes_out_exactly_as_sent(s, n, x, b, t, ts) -> None:
    event = {
        "s": s,
        "n": n,
        "x": x,
        "b": b,
        "t": t and t.isoformat(),
        "ts": ts.isoformat(),
        "extra": [{"deep": None}],
    }

    row = PARSER.parse(json.dumps(event).encode(), INGESTED_AT)

    assert row == {"s": s, "n": n, "x": x, "b": b, "t": t, "ts": ts}
    assert row["ts"].tzinfo is UTC
