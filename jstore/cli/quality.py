"""`jstore quality [VIEW] [--runs N]`: the latest validation runs, their failures and drift."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from jstore.cli.common import open_registry
from jstore.quality import latest_quality_summary


def quality(
    view: Annotated[
        str | None, typer.Argument(help="A feature view; without it, every view's latest run.")
    ] = None,
    runs: Annotated[int, typer.Option(min=1, help="How many runs of the view, newest first.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON.")] = False,
) -> None:
    """Print the latest validation runs: status, failed expectations, drift flags, report."""
    with open_registry() as registry:
        if view is not None:
            registry.get_view(view)  # an unknown view is a user error, not "no runs"
        summaries = latest_quality_summary(registry, view, runs=runs if view else 1)
    if as_json:
        typer.echo(json.dumps(summaries, indent=2))
        return
    if not summaries:
        typer.echo(f"no validation runs of {view}" if view else "no validation runs")
    for summary in summaries:
        typer.echo(_describe(summary))


def _describe(s: dict[str, Any]) -> str:
    lines = [
        f"{s['view']} v{s['version']}  {s['status'].upper():8} [{s['start']}, {s['end']})  "
        f"{s['rows']} rows  {s['run_id']} (staged run {s['staged_run_id']})"
    ]
    lines += [f"  failed: {line}" for line in s["failed"]]
    if s["error"] and not s["failed"]:
        lines.append(f"  error: {s['error']}")
    if s["drift_flagged"]:
        flagged = ", ".join(f"{f} (PSI {s['drift'][f]:.3f})" for f in s["drift_flagged"])
        lines.append(f"  drift: {flagged}")
    if s["report_path"]:
        lines.append(f"  report: {s['report_path']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command()(quality)
