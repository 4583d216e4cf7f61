"""The offline store: one PostgreSQL/TimescaleDB table per feature view version."""

from jstore.offline.pit_join import output_column, uncovered_rows
from jstore.offline.publish import StagedRunRejected
from jstore.offline.store import OfflineStore

__all__ = ["OfflineStore", "StagedRunRejected", "output_column", "uncovered_rows"]
