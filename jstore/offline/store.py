"""`OfflineStore`: the PostgreSQL/TimescaleDB offline store, one table per view version.

The methods are thin: the SQL lives in tables.py (shape and layout), publish.py (write),
reads.py (latest rows, history, changes) and pit_join.py (the point-in-time join).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa

from jstore.config import Settings
from jstore.durations import as_utc
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline import pit_join, reads
from jstore.offline.publish import publish_interval
from jstore.offline.tables import TableLayout
from jstore.staging import StagedRun


class OfflineStore:
    """One connection to the offline database (opened on first use; not for concurrent use)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.schema = settings.offline_schema
        self._conn: psycopg.Connection | None = None
        self._layout: TableLayout | None = None
        self._ensured: set[str] = set()

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(
            self.settings.postgres_dsn.get_secret_value(),
            autocommit=True,
            options="-c TimeZone=UTC",
        )

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    @property
    def layout(self) -> TableLayout:
        if self._layout is None:
            self._layout = TableLayout.for_connection(self.conn, self.schema)
        return self._layout

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def __enter__(self) -> OfflineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_table(self, view: ResolvedView) -> None:
        """Create the view version's table (hypertable or partitioned table) if missing."""
        if view.table not in self._ensured:
            self.layout.create(self.conn, view)
            self._ensured.add(view.table)

    def publish(self, view: ResolvedView, staged: StagedRun) -> int:
        """Replace [staged.start, staged.end) of the view's rows by the staged run's rows."""
        self.ensure_table(view)
        return publish_interval(self.conn, self.layout, view, staged)

    def changed_since(self, view: ResolvedView, since: datetime | None) -> Iterator[pa.RecordBatch]:
        """For each entity with a row computed after `since`, its latest row (see reads.py)."""
        self.ensure_table(view)
        return reads.changed_since(self.conn, self.schema, view, as_utc(since) if since else None)

    def latest_for_entities(
        self, view: ResolvedView, keys: list[tuple]
    ) -> dict[tuple, dict[str, Any]]:
        """The latest row of each entity (key tuples in join-key order); missing ones absent."""
        self.ensure_table(view)
        return reads.latest_for_entities(self.conn, self.schema, view, keys)

    def history(
        self,
        view: ResolvedView,
        key: dict[str, Any],
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """One entity's stored rows with start <= feature_ts < end, oldest first."""
        self.ensure_table(view)
        return reads.history(
            self.conn,
            self.schema,
            view,
            key,
            as_utc(start) if start else None,
            as_utc(end) if end else None,
        )

    def point_in_time_join(
        self,
        entity_rows: pa.Table,
        features: Sequence[tuple[ResolvedView, FeatureSpec]],
        coverage: dict[str, list[tuple[datetime, datetime]]],
    ) -> pa.Table:
        """Entity rows plus `<view>__<feature>` columns (see pit_join.py for the semantics)."""
        return pit_join.point_in_time_join(
            self._connect, self.schema, entity_rows, features, coverage
        )
