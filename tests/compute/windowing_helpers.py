"""Small views and events written straight into the landing zone, as the compute tests use them."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jstore.arrow_types import ARROW_TYPES
from jstore.model import Entity, EventSource, FieldSpec, ResolvedView, resolve

both_evaluations = pytest.mark.parametrize(
    "evaluation", ["generated code", "interpreted"], indirect=True
)
"""A `compute` test run twice: with Spark's generated code, and interpreted (a small run's
confs): the answers must be the same bit for bit. Kept to the golden and oracle tests, where
every function and window edge is exercised, as each run costs a Spark session's jobs again."""

user = Entity(name="user", join_keys=["user_id"])
shop = Entity(name="shop", join_keys=["country", "shop_id"])
clicks = EventSource(
    name="clicks",
    topic="clicks",
    timestamp_field="ts",
    schema=[
        FieldSpec(name="user_id", dtype="string"),
        FieldSpec(name="country", dtype="string"),
        FieldSpec(name="shop_id", dtype="int64"),
        FieldSpec(name="amount", dtype="float64"),
        FieldSpec(name="items", dtype="int64"),
        FieldSpec(name="page", dtype="string"),
        FieldSpec(name="ts", dtype="timestamp"),
    ],
)


def at(text: str) -> datetime:
    """`"10:30"` -> 2024-05-01T10:30Z; `"2d 10:30"` -> 2024-05-02T10:30Z."""
    day, _, clock = text.rpartition(" ")
    hour, minute = map(int, clock.split(":"))
    return datetime(2024, 5, int(day.rstrip("d") or 1), hour, minute, tzinfo=UTC)


def resolved(view) -> ResolvedView:
    return resolve(view, 1, {"user": user, "shop": shop}, {"clicks": clicks})


def write_landing(lake: Path, events: list[dict], source: EventSource = clicks) -> None:
    """Events as the lander writes them: one file per (event_date, partition), with lineage.

    An event may give `_partition` and `_offset`; by default its partition is 0 and its offset
    its position in `events`. `_offset: None` marks a table-source row.
    """
    files: dict[tuple[str, int | None], list[dict]] = defaultdict(list)
    for i, event in enumerate(events):
        row = {f.name: event.get(f.name) for f in source.schema_}
        row["_topic"] = source.topic
        row["_partition"] = event.get("_partition", 0)
        row["_offset"] = event.get("_offset", i)
        row["_ingested_at"] = datetime(2030, 1, 1, tzinfo=UTC)
        day = row[source.timestamp_name].date().isoformat()
        files[(day, row["_partition"])].append(row)
    schema = pa.schema(
        [(f.name, ARROW_TYPES[f.dtype]) for f in source.schema_]
        + [
            ("_topic", pa.string()),
            ("_partition", pa.int32()),
            ("_offset", pa.int64()),
            ("_ingested_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    for n, ((day, partition), rows) in enumerate(sorted(files.items(), key=str)):
        folder = lake / "landing" / source.name / f"event_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{source.topic}-{partition}-{n}-{n}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / name)
