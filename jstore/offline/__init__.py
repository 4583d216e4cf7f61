"""The offline store: one PostgreSQL/TimescaleDB table per feature view version."""

from jstore.offline.pit_join import JoinResult, output_column
from jstore.offline.publish import StagedRunRejected
from jstore.offline.store import OfflineStore

__all__ = ["JoinResult", "OfflineStore", "StagedRunRejected", "output_column"]
