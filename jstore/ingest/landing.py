"""Reading the landing zone back (tests, benchmarks, the demo): every landed row of a source.

Spark jobs read the same files with `spark.read.parquet(<landing>/<source>)`; this is the small
in-process reader. Hidden temp files and `_`-folders (journal, generations) are never read.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds

from jstore.config import Settings
from jstore.ingest.events import EventParser
from jstore.lake import landing_dir
from jstore.model import EventSource, TableSource


def read_landing(settings: Settings, source: EventSource | TableSource) -> pa.Table:
    """All landed rows of `source` (schema columns, lineage columns and `event_date`)."""
    schema = EventParser(source).landing_schema().append(pa.field("event_date", pa.date32()))
    root = landing_dir(settings, source.name)
    if not root.is_dir():
        return schema.empty_table()
    partitioning = ds.partitioning(pa.schema([("event_date", pa.date32())]), flavor="hive")
    dataset = ds.dataset(
        root.path, schema=schema, format="parquet", partitioning=partitioning, filesystem=root.fs
    )
    return dataset.to_table()
