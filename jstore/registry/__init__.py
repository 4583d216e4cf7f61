"""The registry: definitions with versions, runs, watermarks and coverage, in MongoDB."""

from jstore.registry.mongo import NotFound, Registry
from jstore.registry.plan import Change, Plan
from jstore.registry.runs import RunRecord, new_run_id
from jstore.registry.snapshot import Snapshot

__all__ = ["Change", "NotFound", "Plan", "Registry", "RunRecord", "Snapshot", "new_run_id"]
