"""`OfflineStore`: the PostgreSQL/TimescaleDB offline store, one table per view version.

The methods are thin: the SQL lives in tables.py (shape and layout), publish.py (write),
reads.py (latest rows, history, changes), pit_join.py (the point-in-time join) and retention.py
(old partitions dropped).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa

from jstore.closable import Closable
from jstore.config import Settings
from jstore.durations import as_utc
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline import changes, pit_join, reads, retention
from jstore.offline.changes import NOTHING_PENDING, PendingChanges
from jstore.offline.publish import publish_interval
from jstore.offline.tables import TableLayout
from jstore.staging import StagedRun


class OfflineStore(Closable):
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

    def ensure_table(self, view: ResolvedView) -> None:
        """Create the view version's table (hypertable or partitioned table) if missing."""
        if view.table not in self._ensured:
            self.layout.create(self.conn, view)
            changes.ensure_queues(self.conn, self.schema, view)
            self._ensured.add(view.table)

    def _has_table(self, view: ResolvedView) -> bool:
        """Reads of a view never published find nothing; they do not create its table."""
        if view.table not in self._ensured and self.layout.exists(self.conn, view):
            self._ensured.add(view.table)
        return view.table in self._ensured

    def publish(self, view: ResolvedView, staged: StagedRun) -> int:
        """Replace [staged.start, staged.end) of the view's rows by the staged run's rows, then
        drop what is past the view's retention."""
        self.ensure_table(view)
        rows = publish_interval(
            self.conn, self.layout, view, staged, self.settings.postgres_dsn.get_secret_value()
        )
        self.drop_expired(view)
        return rows

    def drop_expired(self, view: ResolvedView, now: datetime | None = None) -> int:
        """Drop the view's partitions past its retention at `now` (default: the clock), queueing
        the entities left without rows for the materializer (retention.py); returns how many."""
        if not self._has_table(view):
            return 0
        return retention.drop_expired(self.conn, self.layout, view, now or datetime.now(UTC))

    def changed_since(self, view: ResolvedView, since: datetime | None) -> Iterator[pa.RecordBatch]:
        """For each entity with a row computed after `since`, its latest row (see reads.py)."""
        if not self._has_table(view):
            return iter(())
        return reads.changed_since(self.conn, self.schema, view, as_utc(since) if since else None)

    @contextmanager
    def materialize_lock(self, view: ResolvedView) -> Iterator[None]:
        """Hold the view version's materialize lock: one materializer at a time (changes.py)."""
        try:
            with changes.materialize_lock(self.conn, self.schema, view):
                yield
        except BaseException:
            self.close()  # ends the session: frees its lock and whatever it was reading
            raise

    @contextmanager
    def pending_changes(self, view: ResolvedView, everything: bool) -> Iterator[PendingChanges]:
        """What the materializer has not pushed yet, in one snapshot (see changes.py).

        `everything`: read the latest row of every entity, not only of the changed ones (a
        first load). Committing consumes what was read; call inside `materialize_lock`.
        """
        if not self._has_table(view):
            yield NOTHING_PENDING
            return
        changes.ensure_queues(self.conn, self.schema, view)  # a table older than its queues
        with changes.pending_changes(self.conn, self.schema, view, everything) as pending:
            yield pending

    def latest_for_entities(
        self, view: ResolvedView, keys: list[tuple]
    ) -> dict[tuple, dict[str, Any]]:
        """The latest row of each entity (key tuples in join-key order); missing ones absent."""
        if not self._has_table(view):
            return {}
        return reads.latest_for_entities(self.conn, self.schema, view, keys)

    def history(
        self,
        view: ResolvedView,
        key: dict[str, Any],
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """One entity's stored rows with start <= feature_ts < end, oldest first."""
        if not self._has_table(view):
            return []
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
    ) -> pit_join.JoinResult:
        """Entity rows plus `<view>__<feature>` columns, and per view the rows past coverage
        (see pit_join.py for the semantics). `coverage`: what is published and still kept
        (`jstore.export.published_coverage`)."""
        return pit_join.point_in_time_join(
            self.settings.postgres_dsn.get_secret_value(),
            self.schema,
            entity_rows,
            features,
            coverage,
            self.settings,
        )

    def prepared_join(
        self,
        entity_batches: pit_join.EntityBatches,
        entity_schema: pa.Schema,
        features: Sequence[tuple[ResolvedView, FeatureSpec]],
        coverage: dict[str, list[tuple[datetime, datetime]]],
    ) -> pit_join.PointInTimeJoin:
        """The point-in-time join of a stream of entity rows, its first pass done: iterate
        `.batches(entity_batches)` for the joined rows; `.uncovered_rows` counts per view."""
        join = pit_join.PointInTimeJoin(
            self.settings.postgres_dsn.get_secret_value(),
            self.schema,
            features,
            coverage,
            self.settings,
        )
        join.prepare(entity_batches, entity_schema)
        return join


def retained_coverage(
    coverage: dict[str, list[tuple[datetime, datetime]]],
    views: Sequence[ResolvedView],
    now: datetime | None = None,
) -> dict[str, list[tuple[datetime, datetime]]]:
    """Coverage without what the views' retention policies have dropped by `now`."""
    now = now or datetime.now(UTC)
    clipped = dict(coverage)
    for view in views:
        if view.definition.retention is None or view.table not in coverage:
            continue
        horizon = now - view.definition.retention
        clipped[view.table] = [
            (max(start, horizon), end) for start, end in coverage[view.table] if end > horizon
        ]
    return clipped
