"""What the landing zone says about Kafka offsets: the highest landed offset of each partition.

The landing zone, not the consumer group, is the source of truth. Every landed or quarantined
file is named `<topic>-<partition>-<first>-<last>.parquet`, and batches land atomically
(jstore/ingest/transaction.py), so every offset up to the highest `last` of a partition is
landed, and the next run starts right after it.

Generations. A memory-only broker (or a re-created topic) can lose its log, and then its
offsets start again at 0: the landing zone's offsets no longer mean the broker's. The lander
detects it (the broker's end offset is below the next offset to land) and refuses, unless told
to start a new generation of the partition. A generation has a base: the first landing-zone
offset it uses. Landed `_offset` = base + broker offset, so landing-zone offsets of a partition
keep growing across generations, never collide, and the dedup key (`_topic`, `_partition`,
`_offset`) stays exact. The bases live in `<landing>/<source>/_generations/<topic>-<partition>.json`
(generation 0 has base 0 and no file).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel

from jstore.lake_fs import LakePath

LANDED_NAME = re.compile(
    r"^(?P<topic>.+)-(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$"
)


def landed_file_name(topic: str, partition: int, first: int, last: int) -> str:
    return f"{topic}-{partition}-{first}-{last}.parquet"


def highest_landed(topic: str, *roots: LakePath) -> dict[int, tuple[int, LakePath]]:
    """The highest landed offset of each partition of `topic` and the file that holds it, from
    the file names under roots."""
    highest: dict[int, tuple[int, LakePath]] = {}
    for root in roots:
        for path in root.rglob("*.parquet"):
            match = LANDED_NAME.match(path.name)
            if match and match["topic"] == topic:
                partition, last = int(match["partition"]), int(match["last"])
                if last > highest.get(partition, (-1, None))[0]:
                    highest[partition] = (last, path)
    return highest


class Generation(BaseModel):
    number: int
    base: int
    """The landing-zone offset of the broker's offset 0 in this generation."""
    started_at: datetime
    reason: str


class PartitionGenerations(BaseModel):
    generations: list[Generation] = []

    @property
    def base(self) -> int:
        return self.generations[-1].base if self.generations else 0

    @property
    def number(self) -> int:
        return self.generations[-1].number if self.generations else 0


def generations_file(landing: LakePath, topic: str, partition: int) -> LakePath:
    return landing / "_generations" / f"{topic}-{partition}.json"


def read_generations(landing: LakePath, topic: str, partition: int) -> PartitionGenerations:
    try:
        text = generations_file(landing, topic, partition).read_text()
    except FileNotFoundError:
        return PartitionGenerations()
    return PartitionGenerations.model_validate_json(text)


def start_generation(
    landing: LakePath, topic: str, partition: int, base: int, reason: str
) -> PartitionGenerations:
    """Record (atomically) that broker offset 0 of `partition` is landing offset `base` from now."""
    current = read_generations(landing, topic, partition)
    updated = PartitionGenerations(
        generations=[
            *current.generations,
            Generation(
                number=current.number + 1, base=base, started_at=datetime.now(UTC), reason=reason
            ),
        ]
    )
    generations_file(landing, topic, partition).write_text(updated.model_dump_json(indent=2))
    return updated
