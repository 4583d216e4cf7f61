"""The online store: the Redis layout, materialization from the offline store, and lookups."""

from jstore.online.materialize import MaterializeResult, ViewMaterialized, materialize
from jstore.online.store import OnlineReader, OnlineStore

__all__ = ["MaterializeResult", "OnlineReader", "OnlineStore", "ViewMaterialized", "materialize"]
