"""What `apply` would change: new objects, updated metadata, and new feature view versions.

A view gets a new version when what its rows mean changes: its keys, source, step, window,
aggregations, query or feature types (the *fingerprint*). Its description, tags, owner, ttl,
retention and start only update the current version in place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from jstore.model import ResolvedView

Action = Literal["create", "new version", "update", "unchanged"]

METADATA_FIELDS = frozenset({"description", "tags", "owner", "ttl", "retention", "start"})


def fingerprint(view: ResolvedView) -> str:
    """A hash of everything that changes what the view's rows mean."""
    spec = view.definition.model_dump(mode="json", exclude=set(METADATA_FIELDS))
    meaning = {
        "view": spec,
        "join_keys": view.join_keys,
        "key_dtypes": view.key_dtypes,
        "source": {"name": view.source.name, "timestamp": view.source.timestamp_name},
        "features": [f.model_dump(mode="json") for f in view.features],
    }
    return hashlib.sha256(json.dumps(meaning, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Change:
    kind: str
    """entity, source, feature view or feature service."""
    name: str
    action: Action
    version: int | None = None
    """For feature views: the version that apply leaves current."""

    def __str__(self) -> str:
        version = f" v{self.version}" if self.version else ""
        return f"{self.action:12} {self.kind} {self.name}{version}"


@dataclass(frozen=True)
class Plan:
    changes: list[Change]

    @property
    def has_changes(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)

    def __str__(self) -> str:
        return "\n".join(map(str, self.changes)) or "nothing to apply"
