"""`jstore demo`: the whole flow on generated data, with the figures printed."""

from __future__ import annotations

from pathlib import Path

import typer

from jstore.cli.common import open_registry, user_errors
from jstore.repo import load_repo

EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "examples" / "ecommerce"

demo_app = typer.Typer(
    invoke_without_command=True,
    help="The whole flow on generated data (subcommands run single steps of it).",
)


@demo_app.callback()
def demo(ctx: typer.Context) -> None:
    """Apply the e-commerce example repo and run the flow over generated data."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        definitions = load_repo(EXAMPLE_REPO)
    with open_registry() as registry:
        typer.echo("== apply examples/ecommerce")
        typer.echo(str(registry.apply(definitions)))
        typer.echo("\n== registered feature views")
        for view in registry.list_views():
            typer.echo(
                f"{view.name:20} v{view.version}  {len(view.features)} features: "
                + ", ".join(f.name for f in view.features[:4])
                + (" …" if len(view.features) > 4 else "")
            )


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
