"""Parse one Kafka message into a typed row of its source, or say exactly why it is bad.

An event is a JSON object holding every field of the source's schema. Fields may be null,
except the timestamp field, which must be an ISO-8601 string (a `Z` or an offset; naive means
UTC) between `EARLIEST_EVENT` and one day after the event was landed. Extra fields are ignored.
Types are strict: `int64` takes JSON integers, `float64` integers or decimals, `bool` true or
false, `string` and `timestamp` strings; a JSON boolean is never a number.

Invariant: whatever bytes a message holds, `parse` returns a row or raises `BadEvent` (whose
message is the quarantine reason), and every row it returns can be stored by every store
downstream: Parquet, Spark, PostgreSQL and Redis. So a row has no NUL and no lone surrogate in
its text (PostgreSQL text holds neither), only finite floats, integers inside int64, and a
timestamp inside `EARLIEST_EVENT` .. landing + `FUTURE_TOLERANCE`, which lies inside the
narrowest range of the stores (`STORABLE_TIMESTAMPS`). Nothing of the message is converted
before its size is known: an integer of thousands of digits is never turned into an `int`
(Python refuses to, with a ValueError), and nesting deeper than Python's recursion limit is a
bad event, not a RecursionError.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from jstore.durations import parse_timestamp
from jstore.lake import landing_schema
from jstore.model import EventSource, TableSource

EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
"""Event timestamps before this are absurd (a zero or a unit mix-up), not late."""
FUTURE_TOLERANCE = timedelta(days=1)
"""Event timestamps later than this after landing are absurd (a clock or unit error)."""
STORABLE_TIMESTAMPS = (
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
)
"""The narrowest timestamp range of the stores (Spark's TimestampType and Python's datetime;
pyarrow's timestamp[us] and PostgreSQL's timestamptz hold more). The accepted window above
lies inside it."""
INT64_DIGITS = 19
"""Digits of the largest int64: a longer JSON integer is never converted to an `int`."""
EXCERPT_CHARS = 60
"""Quoted values in a reason are cut to this many characters."""

_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")


class BadEvent(ValueError):
    """A message that cannot become a row; the message is the quarantine reason."""


@dataclass(frozen=True)
class LongInteger:
    """A JSON integer too long for int64, kept as its text (never converted to an `int`)."""

    text: str


@dataclass(frozen=True)
class EventParser:
    """Turns message values of one source into rows (dicts keyed by the schema's fields)."""

    source: EventSource | TableSource

    def landing_schema(self) -> pa.Schema:
        return landing_schema(self.source)

    def parse(self, value: bytes | None, ingested_at: datetime) -> dict[str, Any]:
        """The typed row of one message value; raises BadEvent naming the problem."""
        if value is None:
            raise BadEvent("empty message (null value)")
        event = _json_object(value)
        row: dict[str, Any] = {}
        for spec in self.source.schema_:
            if spec.name not in event:
                raise BadEvent(f"missing field {spec.name!r}")
            if isinstance(event, _DuplicateKeys) and spec.name in event.duplicates:
                raise BadEvent(f"field {spec.name!r} given twice")
            row[spec.name] = _typed(spec.name, spec.dtype, event[spec.name])
        ts_name = self.source.timestamp_name
        ts = row[ts_name]
        if ts is None:
            raise BadEvent(f"field {ts_name!r}: null timestamp")
        if not EARLIEST_EVENT <= ts <= ingested_at + FUTURE_TOLERANCE:
            raise BadEvent(
                f"field {ts_name!r}: absurd timestamp {ts.isoformat()} (before "
                f"{EARLIEST_EVENT.date().isoformat()} or more than "
                f"{FUTURE_TOLERANCE.days} day after landing)"
            )
        return row


def _json_object(value: bytes) -> dict[str, Any]:
    try:
        event = json.loads(
            value.decode("utf-8"),
            parse_int=_integer,
            object_pairs_hook=_object,
        )
    except UnicodeDecodeError as e:
        raise BadEvent(f"not UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise BadEvent(f"not JSON: {e}") from None
    except RecursionError:
        raise BadEvent("not JSON: nested too deeply") from None
    if not isinstance(event, dict):
        raise BadEvent(f"not a JSON object: {_json_type(event)}")
    return event


def _integer(text: str) -> int | LongInteger:
    return LongInteger(text) if len(text.lstrip("-")) > INT64_DIGITS else int(text)


class _DuplicateKeys(dict):
    """A JSON object naming some keys twice: a schema field named twice is ambiguous (bad),
    an extra field named twice is ignored like any extra field."""

    duplicates: set[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    ambiguous = _DuplicateKeys(obj)
    seen: set[str] = set()
    ambiguous.duplicates = {k for k, _ in pairs if k in seen or seen.add(k)}
    return ambiguous


def _typed(name: str, dtype: str, value: Any) -> Any:
    if value is None:
        return None
    ok = {
        "string": isinstance(value, str),
        "int64": isinstance(value, int | LongInteger) and not isinstance(value, bool),
        "float64": isinstance(value, int | float | LongInteger) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "timestamp": isinstance(value, str),
    }[dtype]
    if not ok:
        raise BadEvent(f"field {name!r}: expected {dtype}, got {_json_type(value)}")
    if dtype == "string":
        return _storable_text(name, value)
    if dtype == "float64":
        number = float(value.text if isinstance(value, LongInteger) else value)
        if not math.isfinite(number):
            raise BadEvent(f"field {name!r}: {number} is not a finite float64")
        return number
    if dtype == "int64":
        if isinstance(value, LongInteger):
            digits = len(value.text.lstrip("-"))
            raise BadEvent(f"field {name!r}: an integer of {digits} digits does not fit int64")
        if not -(2**63) <= value < 2**63:
            raise BadEvent(f"field {name!r}: {value} does not fit int64")
    if dtype == "timestamp":
        return _timestamp(name, value)
    return value


def _storable_text(name: str, text: str) -> str:
    bad = _UNSTORABLE_CHAR.search(text)
    if bad is None:
        return text
    char = bad.group()
    what = "NUL, which PostgreSQL text cannot hold" if char == "\x00" else "a lone surrogate"
    raise BadEvent(f"field {name!r}: holds U+{ord(char):04X} ({what}) at index {bad.start()}")


def _timestamp(name: str, text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError:
        raise BadEvent(f"field {name!r}: unparsable timestamp {_excerpt(text)}") from None
    except OverflowError:
        raise BadEvent(
            f"field {name!r}: timestamp {_excerpt(text)} is outside "
            f"{STORABLE_TIMESTAMPS[0].year:04d}..{STORABLE_TIMESTAMPS[1].year} once in UTC"
        ) from None


def _excerpt(text: str) -> str:
    """`text` quoted (repr escapes NUL and surrogates), cut to EXCERPT_CHARS characters."""
    if len(text) <= EXCERPT_CHARS:
        return repr(text)
    return f"{text[:EXCERPT_CHARS]!r}… ({len(text)} characters)"


def _json_type(value: Any) -> str:
    if isinstance(value, LongInteger):
        return "integer"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)
