"""Durations written as `<n><unit>` (`15m`, `1h`, `7d`, `2w`), UTC step alignment, and the
one wire form of a timestamp (`iso`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_duration(text: str | timedelta) -> timedelta:
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
    else:
        match = _PATTERN.match(str(text).strip())
        if not match:
            raise ValueError(f"{text!r} is not a duration like 15m, 1h, 7d or 2w")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0 or seconds != int(seconds):
        raise ValueError(f"{text!r} must be a positive whole number of seconds")
    return timedelta(seconds=seconds)


def format_duration(d: timedelta) -> str:
    """The shortest exact spelling: 3600 s -> `1h`, 90000 s -> `25h`, 604800 s -> `7d`."""
    seconds = int(d.total_seconds())
    for unit in ("d", "h", "m", "s"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    raise AssertionError("unreachable: every whole second count is a multiple of 1s")


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


def as_utc(ts: datetime) -> datetime:
    """A timezone-aware UTC datetime; naive input is taken to be UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with `Z`: a timestamp as every wire (the API, the online store, messages)
    writes it."""
    return as_utc(ts).isoformat().replace("+00:00", "Z")


def floor_to_step(ts: datetime, step: timedelta) -> datetime:
    """The latest step boundary at or before `ts` (steps are UTC-aligned multiples of `step`)."""
    ts = as_utc(ts)
    return ts - (ts - EPOCH) % step


def is_aligned(ts: datetime, step: timedelta) -> bool:
    return (as_utc(ts) - EPOCH) % step == timedelta(0)


def parse_timestamp(text: str) -> datetime:
    """An ISO-8601 timestamp as UTC (`Z` or an offset; naive means UTC)."""
    try:
        return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO-8601 timestamp like 2024-05-01T10:00:00Z"
        ) from None
