"""The online store: the Redis layout, materialization from the offline store, and lookups."""

from jstore.online.materialize import (
    MaterializeFailed,
    MaterializeResult,
    ViewFailed,
    ViewMaterialized,
    materialize,
)
from jstore.online.store import OnlineReader, OnlineStore

__all__ = [
    "MaterializeFailed",
    "MaterializeResult",
    "OnlineReader",
    "OnlineStore",
    "ViewFailed",
    "ViewMaterialized",
    "materialize",
]
