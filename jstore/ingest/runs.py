"""Run records of landings and extracts that a killed process left behind."""

from __future__ import annotations

from jstore.registry import Registry


def fail_dead_runs(registry: Registry, kind: str, source: str, found_by: str) -> None:
    """Mark runs of `source` left `running` by a killed process as failed.

    Only called while holding the source's lease, so no other run of it can still commit
    (a holder that outlived its lease is refused at its commit: jstore/registry/leases.py).
    """
    for dead in registry.list_runs(kind=kind, subject=source, status="running", limit=1000):
        registry.finish_run(
            dead.run_id, "failed", error=f"the run died before finishing; found by run {found_by}"
        )
