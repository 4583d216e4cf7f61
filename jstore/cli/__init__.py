"""The `jstore` command. Each verb group lives in its own module and registers on `app`."""

from __future__ import annotations

import sys

import typer

from jstore.cli import definitions, demo, ingest, offline, online, quality, recompute
from jstore.cli.common import SERVER_DOWN_EXIT_CODE, UserError, unreachable_server
from jstore.cli.progress_bar import shown_on_stderr
from jstore.process_exit import freeze_at_exit

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
recompute.register(app)


def main() -> None:
    """Run the CLI; a user error ends with one clear line on stderr and exit code 2, a server
    that is down or refuses with one line naming it and exit code 1."""
    # typer vendors click: its usage errors are typer._click's, not the `click` package's.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    freeze_at_exit()  # a quick exit after Great Expectations and the rest were imported
    try:
        with shown_on_stderr():  # progress of long work: a bar on a terminal, else lines
            exit_code = app(standalone_mode=False)  # the code of a `typer.Exit`, else None
    except typer.Abort:
        sys.exit(130)
    except NoArgsIsHelpError as e:
        e.show()
        sys.exit(e.exit_code)
    except ClickException as e:
        print(f"jstore: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except Exception as e:
        down = unreachable_server(e)
        if down is not None:
            print(f"jstore: {down}", file=sys.stderr)
            sys.exit(SERVER_DOWN_EXIT_CODE)
        if not isinstance(e, UserError):
            raise
        print(f"jstore: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)
