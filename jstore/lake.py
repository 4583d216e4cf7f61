"""Where things live in the lake: landing zone, quarantine, staging and quality reports.

Layout (see docs/architecture.md):
    <lake>/landing/<source>/event_date=YYYY-MM-DD/<topic>-<partition>-<first>-<last>.parquet
    <lake>/quarantine/<source>/...
    <lake>/staging/<view>/<run>/part-*.parquet + _manifest.json
    <lake>/quality/  (Great Expectations Data Docs)
    <lake>/exports/<run>/  (the Spark export's Parquet)

Every location is a `LakePath` below `lake_root(settings)` (jstore/lake_fs.py): a local folder
or a prefix of an object store bucket, read and written the same way.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pyarrow as pa

from jstore.arrow_types import ARROW_TYPES
from jstore.config import Settings
from jstore.lake_fs import LakePath, lake_root
from jstore.model import EventSource, TableSource

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_run_id(run_id: str) -> str:
    """A run id usable as a folder name (Airflow's contain ':' and '+')."""
    return _UNSAFE.sub("_", run_id)


LINEAGE_FIELDS: list[pa.Field] = [
    pa.field("_topic", pa.string()),
    pa.field("_partition", pa.int32()),
    pa.field("_offset", pa.int64()),
    pa.field("_ingested_at", ARROW_TYPES["timestamp"]),
]
"""The columns every landed row carries beside the source's own (docs/architecture.md)."""


def landing_schema(source: EventSource | TableSource) -> pa.Schema:
    """The one definition of a landed row: the source's fields, then the lineage columns (the
    lander and extract write it; jobs/landing.py reads it in Spark's form)."""
    fields = [pa.field(f.name, ARROW_TYPES[f.dtype]) for f in source.schema_]
    return pa.schema(fields + LINEAGE_FIELDS)


def landing_dir(settings: Settings, source: str) -> LakePath:
    return lake_root(settings) / "landing" / source


def landing_partition(settings: Settings, source: str, day: date) -> LakePath:
    return landing_dir(settings, source) / f"event_date={day.isoformat()}"


def landed_bytes(settings: Settings, source: str, start: datetime, end: datetime) -> int:
    """The bytes of the files in the landing partitions of the days [start, end) falls on."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    days = (first + timedelta(days=i) for i in range((last - first).days + 1))
    return sum(sum(landing_partition(settings, source, day).files().values()) for day in days)


def quarantine_dir(settings: Settings, source: str) -> LakePath:
    return lake_root(settings) / "quarantine" / source


def staging_dir(settings: Settings, view: str, run_id: str) -> LakePath:
    return lake_root(settings) / "staging" / view / safe_run_id(run_id)


def quality_dir(settings: Settings) -> LakePath:
    return lake_root(settings) / "quality"


def exports_dir(settings: Settings) -> LakePath:
    return lake_root(settings) / "exports"
