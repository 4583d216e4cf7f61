"""The `jstore` command. Each verb group lives in its own module and registers on `app`."""

from __future__ import annotations

import sys

import typer

from jstore.cli import definitions, demo, ingest, offline, online, quality
from jstore.cli.common import UserError

app = typer.Typer(
    name="jstore",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="JStore: windowed features from Kafka and PostgreSQL, computed with Spark, "
    "served from Redis and TimescaleDB.",
)
definitions.register(app)
demo.register(app)
ingest.register(app)
offline.register(app)
online.register(app)
quality.register(app)


def main() -> None:
    """Run the CLI; a user error ends with one clear line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except UserError as e:
        print(f"jstore: {e}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # click's usage errors
        import click

        if isinstance(e, click.ClickException):
            print(f"jstore: {e.format_message()}", file=sys.stderr)
            sys.exit(e.exit_code)
        raise
