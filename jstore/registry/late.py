"""Late events in the registry: per view version, the published intervals that events landed
after their publish affect, and how many events each (collection `late_events`).

One document per (view, version, start, end, batch): `batch` names the landed batch of one
Kafka partition (`<topic>-<partition>-<first landing offset>`), or an extract run (its run
id), and `events` is how many of its events (an extract: rows) affect
[start, end). The lander writes the documents before it makes the batch's files
final, so a crash in between cannot forget them; a batch landed again after such a crash starts
at the same offset, so it rewrites its own documents instead of counting twice. `jstore
recompute` reads them and deletes exactly the documents it recomputed, once the recompute
succeeded (jstore/late_events.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pymongo import ASCENDING, UpdateOne

from jstore.durations import as_utc
from jstore.registry.mongo import Registry

COLLECTION = "late_events"

AffectedInterval = tuple[str, int, datetime, datetime]
"""(view, version, start, end): a published interval that late events change."""


class LateInterval(BaseModel):
    """A published interval of a view version that late events change, and their count."""

    view: str
    version: int
    start: datetime
    end: datetime
    events: int
    ids: list[Any] = []
    """The registry documents counted here (what clearing it deletes)."""


def record_late_events(
    registry: Registry, batch: str, counts: Mapping[AffectedInterval, int]
) -> None:
    """Count the late events of one landed batch per affected interval (idempotent per batch)."""
    if not counts:
        return
    collection = registry.db[COLLECTION]
    collection.create_index(
        [
            ("view", ASCENDING),
            ("version", ASCENDING),
            ("start", ASCENDING),
            ("end", ASCENDING),
            ("batch", ASCENDING),
        ],
        unique=True,
    )
    now = datetime.now(UTC)
    collection.bulk_write(
        [
            UpdateOne(
                {"view": view, "version": version, "start": start, "end": end, "batch": batch},
                {"$set": {"events": n, "landed_at": now}},
                upsert=True,
            )
            for (view, version, start, end), n in counts.items()
        ]
    )


def forget_batch(registry: Registry, batch: str) -> None:
    """Delete the counts of a batch that did not land after all (its extract job failed)."""
    registry.db[COLLECTION].delete_many({"batch": batch})


def late_intervals(registry: Registry, view: str, version: int) -> list[LateInterval]:
    """The intervals of a view version that late events change, sorted, with their counts."""
    grouped: dict[tuple[datetime, datetime], list[dict]] = defaultdict(list)
    for doc in registry.db[COLLECTION].find({"view": view, "version": version}):
        grouped[(as_utc(doc["start"]), as_utc(doc["end"]))].append(doc)
    return [
        LateInterval(
            view=view,
            version=version,
            start=start,
            end=end,
            events=sum(d["events"] for d in docs),
            ids=[d["_id"] for d in docs],
        )
        for (start, end), docs in sorted(grouped.items())
    ]


def views_with_late_events(registry: Registry) -> list[tuple[str, int]]:
    """(view, version) pairs that have late events counted, sorted."""
    pairs = registry.db[COLLECTION].aggregate(
        [{"$group": {"_id": {"view": "$view", "version": "$version"}}}]
    )
    return sorted((p["_id"]["view"], p["_id"]["version"]) for p in pairs)


def clear_late_events(registry: Registry, intervals: Iterable[LateInterval]) -> int:
    """Forget the documents counted in `intervals` (after their recompute succeeded); documents
    written since they were read stay. Returns how many were deleted."""
    ids = [i for interval in intervals for i in interval.ids]
    if not ids:
        return 0
    return registry.db[COLLECTION].delete_many({"_id": {"$in": ids}}).deleted_count
