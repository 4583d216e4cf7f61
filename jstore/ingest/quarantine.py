"""Quarantined events: the raw bytes of each bad message, where it came from, and why.

Layout: `<lake>/quarantine/<source>/ingest_date=YYYY-MM-DD/<topic>-<partition>-<first>-<last>`
`.parquet` with the columns of QUARANTINE_SCHEMA. The files are named like landed files, so
their offsets count when the lander looks for where to resume: a bad event is handled exactly
once too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from jstore.config import Settings
from jstore.lake import LINEAGE_FIELDS, quarantine_dir
from jstore.lake_fs import LakePath

QUARANTINE_SCHEMA = pa.schema(
    [
        *LINEAGE_FIELDS,
        pa.field("key", pa.binary()),
        pa.field("raw", pa.binary()),
        pa.field("reason", pa.string()),
    ]
)


@dataclass
class QuarantinedEvents:
    """The bad events of one partition in one batch, gathered column by column."""

    topic: str
    partition: int
    offsets: list[int] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    raws: list[bytes | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, offset: int, key: bytes | None, raw: bytes | None, reason: str) -> None:
        self.offsets.append(offset)
        self.keys.append(key)
        self.raws.append(raw)
        self.reasons.append(reason)

    def table(self, ingested_at: datetime) -> pa.Table:
        n = len(self.offsets)
        return pa.table(
            {
                "_topic": [self.topic] * n,
                "_partition": [self.partition] * n,
                "_offset": self.offsets,
                "_ingested_at": [ingested_at] * n,
                "key": self.keys,
                "raw": self.raws,
                "reason": self.reasons,
            },
            schema=QUARANTINE_SCHEMA,
        )

    def folder(self, settings: Settings, source: str, ingested_at: datetime) -> LakePath:
        return quarantine_dir(settings, source) / f"ingest_date={ingested_at.date().isoformat()}"


def read_quarantine(settings: Settings, source: str) -> pa.Table:
    """Every quarantined event of a source, sorted by partition and offset."""
    import pyarrow.dataset as ds

    root = quarantine_dir(settings, source)
    if not root.is_dir():
        return QUARANTINE_SCHEMA.empty_table()
    dataset = ds.dataset(root.path, schema=QUARANTINE_SCHEMA, format="parquet", filesystem=root.fs)
    table = dataset.to_table()
    return table.sort_by([("_partition", "ascending"), ("_offset", "ascending")])
