"""The candidate rows of a point-in-time join read from the published files, not PostgreSQL.

A view's table holds, over each time range, the rows of the staged run published last over it
(published_files.py records which); those runs' Parquet files hold the same rows. Reading them
costs the export a fraction of fetching them from the server: the server's join sends every
candidate row's features through binary COPY, one send call per value, and the client decodes
them again (about 0.6 server and 0.4 client CPU-seconds for user_purchases' 288,499 candidate
rows at 1M entity rows, docs/offline_store.md). Here each file is read a batch at a time, its
keys looked up in the join's key dictionary and its rows kept as the server's join keeps them
(`SpanLookup`), so memory holds the candidate rows and one batch, as it does when they come
from the server.
"""

from __future__ import annotations

import pyarrow as pa

from jstore.arrow_types import ARROW_TYPES
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.pit_candidates import CODE
from jstore.offline.pit_keys import KeyDictionary
from jstore.offline.pit_spans import SpanLookup
from jstore.offline.published_files import FileRange, read_rows

READ_ROWS = 262_144
"""Stored rows read at a time: each batch's keys are looked up in the key dictionary, whose hash
Arrow builds again per lookup, so bigger batches cost less, while they hold a few tens of MB."""


def candidate_schema(features: list[FeatureSpec]) -> pa.Schema:
    """The columns of a view's candidate rows, from the server or from the files."""
    return pa.schema(
        [(CODE, pa.int64()), ("feature_ts", ARROW_TYPES["timestamp"])]
        + [(spec.name, ARROW_TYPES[spec.dtype]) for spec in features]
    )


def file_candidates(
    view: ResolvedView,
    features: list[FeatureSpec],
    files: list[FileRange],
    asked: SpanLookup,
    keys: KeyDictionary,
) -> pa.Table:
    """The view's candidate rows (`candidate_schema`) from its published files, within the
    spans' bounds."""
    schema = candidate_schema(features)
    columns = [*view.join_keys, "feature_ts", *(spec.name for spec in features)]
    kept = []
    for batch in read_rows(files, view, columns, *asked.bounds, READ_ROWS):
        code = keys.lookup([batch.column(k) for k in view.join_keys])
        times = batch.column("feature_ts")
        keep = asked.asked(code, times.cast(pa.int64()).to_numpy())
        if not keep.any():
            continue
        mask = pa.array(keep)
        stored = [batch.column(spec.name).filter(mask) for spec in features]
        kept.append(pa.record_batch([pa.array(code[keep]), times.filter(mask), *stored], schema))
    return pa.Table.from_batches(kept, schema)
