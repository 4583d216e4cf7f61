"""`jstore recompute [VIEW ...]`: republish the published intervals that late events changed."""

from __future__ import annotations

from typing import Annotated

import typer

from jstore.cli.common import open_registry
from jstore.config import get_settings


def recompute(
    views: Annotated[
        list[str] | None,
        typer.Argument(help="Feature views (default: every view with late events)."),
    ] = None,
) -> None:
    """Recompute and republish the published intervals that late events changed; exits 1
    when any run failed, after trying them all."""
    from jstore.ingest.recovery import LandingIncomplete
    from jstore.late_events import recompute

    with open_registry(LandingIncomplete) as registry:
        runs = recompute(get_settings(), registry, views)
    if not runs:
        typer.echo("no late events to recompute")
    for run in runs:
        span = f"{run.view} v{run.version} [{run.start.isoformat()}, {run.end.isoformat()})"
        counted = f"{run.late_events} late events in {run.intervals} intervals"
        if run.status == "success":
            typer.echo(
                f"recomputed {span}: {counted}, published {run.published_rows} rows  run "
                f"{run.run_id}"
            )
        else:
            typer.echo(f"FAILED {span}: {counted} stay counted: {run.error}", err=True)
    if any(run.status == "failed" for run in runs):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(recompute)
