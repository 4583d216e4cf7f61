"""`jstore materialize | serve`: push changes to Redis, and run the API."""

from __future__ import annotations

from typing import Annotated

import typer

from jstore.cli.common import open_registry
from jstore.config import get_settings


def materialize(
    views: Annotated[
        list[str] | None, typer.Argument(help="Feature views (default: every registered view).")
    ] = None,
) -> None:
    """Push what changed in the offline store since the last run to Redis (incremental).

    Every view it can is pushed; each view that failed gets one line on stderr, and the exit
    code is then 1.
    """
    from jstore.online import materialize as run

    with open_registry() as registry:
        result = run(get_settings(), registry, views or None)
    for v in result.views:
        watermark = v.watermark.isoformat() if v.watermark else "-"
        typer.echo(
            f"{v.view:24} v{v.version:<3} written {v.written:>9}  deleted {v.deleted:>7}  "
            f"retired {v.retired_keys:>7}  watermark {watermark}"
        )
    for f in result.failed:
        typer.echo(f"jstore: materialize {f.view} v{f.version} failed: {f.error}", err=True)
    if result.failed:
        raise typer.Exit(1)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (JSTORE_API_URL should name it).")] = 8765,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run the REST API (online lookups, training sets, registry, quality) with uvicorn."""
    import uvicorn

    uvicorn.run("serving.app:app", host=host, port=port, workers=workers, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command()(materialize)
    app.command()(serve)
