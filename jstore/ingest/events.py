"""Parse one Kafka message into a typed row of its source, or say exactly why it is bad.

An event is a JSON object holding every field of the source's schema. Fields may be null,
except the timestamp field, which must be an ISO-8601 string (a `Z` or an offset; naive means
UTC) between `EARLIEST_EVENT` and one day after the event was landed. Extra fields are ignored.
Types are strict: `int64` takes JSON integers, `float64` integers or decimals, `bool` true or
false, `string` and `timestamp` strings; a JSON boolean is never a number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from jstore.arrow_types import ARROW_TYPES
from jstore.durations import parse_timestamp
from jstore.model import EventSource, TableSource

EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
"""Event timestamps before this are absurd (a zero or a unit mix-up), not late."""
FUTURE_TOLERANCE = timedelta(days=1)
"""Event timestamps later than this after landing are absurd (a clock or unit error)."""


LINEAGE_FIELDS: list[pa.Field] = [
    pa.field("_topic", pa.string()),
    pa.field("_partition", pa.int32()),
    pa.field("_offset", pa.int64()),
    pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
]
"""The columns every landed row carries beside the source's own (docs/architecture.md)."""


class BadEvent(ValueError):
    """A message that cannot become a row; the message is the quarantine reason."""


@dataclass(frozen=True)
class EventParser:
    """Turns message values of one source into rows (dicts keyed by the schema's fields)."""

    source: EventSource | TableSource

    def landing_schema(self) -> pa.Schema:
        fields = [pa.field(f.name, ARROW_TYPES[f.dtype]) for f in self.source.schema_]
        return pa.schema(fields + LINEAGE_FIELDS)

    def parse(self, value: bytes | None, ingested_at: datetime) -> dict[str, Any]:
        """The typed row of one message value; raises BadEvent naming the problem."""
        if value is None:
            raise BadEvent("empty message (null value)")
        try:
            event = json.loads(value.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise BadEvent(f"not UTF-8: {e}") from None
        except json.JSONDecodeError as e:
            raise BadEvent(f"not JSON: {e}") from None
        if not isinstance(event, dict):
            raise BadEvent(f"not a JSON object: {type(event).__name__}")
        row: dict[str, Any] = {}
        for spec in self.source.schema_:
            if spec.name not in event:
                raise BadEvent(f"missing field {spec.name!r}")
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


def _typed(name: str, dtype: str, value: Any) -> Any:
    if value is None:
        return None
    ok = {
        "string": isinstance(value, str),
        "int64": isinstance(value, int) and not isinstance(value, bool),
        "float64": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "timestamp": isinstance(value, str),
    }[dtype]
    if not ok:
        raise BadEvent(f"field {name!r}: expected {dtype}, got {_json_type(value)}")
    if dtype == "float64":
        return float(value)
    if dtype == "int64" and not -(2**63) <= value < 2**63:
        raise BadEvent(f"field {name!r}: {value} does not fit int64")
    if dtype == "timestamp":
        try:
            return parse_timestamp(value)
        except ValueError:
            raise BadEvent(f"field {name!r}: unparsable timestamp {value!r}") from None
    return value


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}.get(
        type(value), "object"
    )
