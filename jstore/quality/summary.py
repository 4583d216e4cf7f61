"""The latest validation runs as JSON-ready dicts, for `jstore quality` and the API's /quality."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jstore.durations import iso
from jstore.registry import Registry, RunRecord


def latest_quality_summary(
    registry: Registry, view: str | None = None, runs: int = 1
) -> list[dict[str, Any]]:
    """The latest `runs` validate runs of `view`, or of every registered view; newest first.

    Views never validated are left out. Each dict: view, version, run_id, staged_run_id,
    status (running, success, failed), start, end, finished_at (ISO-8601 UTC with `Z`, as
    every wire: `durations.iso`), rows, failed, statistics, drift, drift_flagged, report_path,
    and report_page (the page's path inside the Data Docs site, which the API serves under
    /quality/).
    """
    names = [view] if view else [v.name for v in registry.list_views()]
    summaries = []
    for name in names:
        for run in registry.list_runs(kind="validate", subject=name, limit=runs):
            summaries.append(_summary(run))
    return summaries


def _summary(run: RunRecord) -> dict[str, Any]:
    details = run.details
    return {
        "view": run.subject,
        "version": run.version,
        "run_id": run.run_id,
        "staged_run_id": details.get("staged_run_id"),
        "status": run.status,
        "start": _wire(run.start),
        "end": _wire(run.end),
        "finished_at": _wire(run.finished_at),
        "rows": run.rows,
        "failed": details.get("failed", []),
        "error": run.error,
        "statistics": details.get("statistics", {}),
        "drift": details.get("drift", {}),
        "drift_flagged": details.get("drift_flagged", []),
        "report_path": details.get("report_path"),
        "report_page": details.get("report_page"),
    }


def _wire(ts: datetime | None) -> str | None:
    return None if ts is None else iso(ts)
