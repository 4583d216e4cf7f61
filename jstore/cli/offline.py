"""`jstore compute | validate | publish | export`: the offline store's verbs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from jstore import phases
from jstore.cli.common import UserError, open_registry, timestamp_option
from jstore.config import Settings, get_settings
from jstore.registry import Registry
from jstore.staging import StagedRun

ViewName = Annotated[str, typer.Argument(help="Feature view name.")]


class ExportEngine(StrEnum):
    default = "default"
    spark = "spark"


StagedRunId = Annotated[str, typer.Option(help="The staged run (the compute run's id).")]


def compute(
    view: ViewName,
    start: Annotated[str, typer.Option(help="First step, ISO-8601 UTC (aligned to the step).")],
    end: Annotated[
        str, typer.Option(help="End of the interval (exclusive), aligned, not in the future.")
    ],
    run_id: Annotated[str | None, typer.Option(help="Run id (default: generated).")] = None,
    retile: Annotated[
        bool, typer.Option(help="Rebuild the view's stored tiles from the landing zone.")
    ] = False,
) -> None:
    """Compute [start, end) of a view with Spark, validate it, and publish it if valid."""
    from jstore.ingest.recovery import LandingIncomplete
    from jstore.pipeline import ComputeFailed
    from jstore.pipeline import compute as run_pipeline
    from jstore.quality.report import QualityGateFailed
    from jstore.request import ComputeRequest

    interval = timestamp_option(start, "start"), timestamp_option(end, "end")
    with phases.collecting() as timings, open_registry() as registry:
        phases.add("start", phases.process_age())  # Python, imports, the command line
        try:
            request = ComputeRequest.of(registry.get_view(view), *interval, run_id, retile=retile)
        except ValueError as e:
            raise UserError(str(e)) from None
        try:
            result = run_pipeline(get_settings(), registry, request)
        except (QualityGateFailed, ComputeFailed, LandingIncomplete) as e:
            typer.echo(f"jstore: {e}", err=True)
            raise typer.Exit(1) from None
    typer.echo(
        phases.summary(timings, phases.process_age(), rest="registry and bookkeeping"), err=True
    )
    typer.echo(
        f"{result.view} v{result.version} [{result.start.isoformat()}, {result.end.isoformat()}): "
        f"{result.staged_rows} rows staged, validated, {result.published_rows} published "
        f"(run {result.run_id}; report {result.validation.report_path})"
    )
    for feature in result.validation.drift_flagged:
        typer.echo(f"warning: drift on {feature}: {result.validation.drift[feature]:.3f}")


@contextmanager
def staged_run(
    view: str, run_id: str, *refusals: type[Exception]
) -> Iterator[tuple[Settings, Registry, StagedRun]]:
    """The settings, the registry and the staged run `run_id` of `view` (`view@vN` accepted);
    `refusals` in the block end the command with one line, as `open_registry`'s."""
    settings = get_settings()
    with open_registry(*refusals) as registry:
        yield settings, registry, StagedRun.find(settings, view.partition("@")[0], run_id)


def validate(view: ViewName, run_id: StagedRunId) -> None:
    """Validate a staged run with its view's suite (what `jstore publish` then requires)."""
    from jstore.pipeline import validate as validate_run
    from jstore.quality.report import QualityGateFailed

    with staged_run(view, run_id) as (settings, registry, staged):
        try:
            report = validate_run(settings, registry, staged)
        except QualityGateFailed as e:
            typer.echo(f"jstore: {e}", err=True)
            raise typer.Exit(1) from None
    typer.echo(
        f"{staged.view} v{staged.version} run {staged.run_id}: {report.rows} rows passed "
        f"(report {report.report_path})"
    )


def publish(view: ViewName, run_id: StagedRunId) -> None:
    """Publish a validated staged run: replace its interval in the offline store, extend the
    coverage. A run without a successful validation is refused."""
    from jstore.offline import StagedRunRejected
    from jstore.pipeline import StagedRunNotValidated
    from jstore.pipeline import publish as publish_run

    refusals = StagedRunRejected, StagedRunNotValidated
    with staged_run(view, run_id, *refusals) as (settings, registry, staged):
        rows = publish_run(settings, registry, staged)
    typer.echo(
        f"{staged.view} v{staged.version} [{staged.start.isoformat()}, {staged.end.isoformat()}): "
        f"{rows} rows published from run {staged.run_id}"
    )


def export(
    entities: Annotated[Path, typer.Option(help="Entity rows: .parquet or .csv.")],
    out: Annotated[
        str, typer.Option(help="Output file: .parquet or .csv (a path, or s3://bucket/key).")
    ],
    features: Annotated[
        str | None, typer.Option(help="Comma-separated refs, e.g. user_purchases:count_1h.")
    ] = None,
    service: Annotated[str | None, typer.Option(help="A feature service name.")] = None,
    engine: Annotated[
        ExportEngine,
        typer.Option(
            help="default: PostgreSQL + this process; spark: a Spark job writing a Parquet folder."
        ),
    ] = ExportEngine.default,
) -> None:
    """Point-in-time join entity rows with features into a training set."""
    from jstore.export import export_training_set
    from jstore.spark_submit import SparkJobFailed

    refs = [r.strip() for r in features.split(",") if r.strip()] if features else None
    with open_registry() as registry:
        try:
            result = export_training_set(
                get_settings(), registry, entities, out, refs, service, engine=engine.value
            )
        except SparkJobFailed as e:
            typer.echo(f"jstore: {e}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"{result.rows} rows x {len(result.columns)} features -> {result.out_path}")
    for table, count in result.uncovered_rows.items():
        if count:
            typer.echo(f"{table}: {count} rows past the published coverage (null features)")


def register(app: typer.Typer) -> None:
    app.command()(compute)
    app.command()(validate)
    app.command()(publish)
    app.command()(export)
