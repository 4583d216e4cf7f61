"""A compute, as the CLI and the compute DAG's tasks run it: stage → validate → publish.

A `ComputeRequest` (jstore/request.py) is resolved once; `stage` writes it into the staged run's
folder and runs the Spark job on it; `validate` and `publish` take the `StagedRun`, whose
request carries the resolved view. The CLI (`jstore compute`, `jstore publish`) and the DAG tasks
(jstore/orchestration.py) call these same functions, each recording its run with
`Registry.run`: a `compute` run (the staging), a `validate` run, a `publish` run.

Write-audit-publish: `publish` refuses a staged run without a successful validation of that
same run (`StagedRunNotValidated`); a failed suite raises `QualityGateFailed` and leaves the
offline store and the coverage as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial

from pydantic import BaseModel

from jstore import phases
from jstore.config import Settings
from jstore.ingest.recovery import ensure_landing_complete
from jstore.lake import landed_bytes, staging_dir
from jstore.quality.report import QualityGateFailed, ValidationReport
from jstore.registry import Registry, RunRecord
from jstore.request import ComputeRequest, read_range
from jstore.spark_submit import SparkJob, SparkJobFailed, compute_job, submit
from jstore.staging import StagedRun


class ComputeFailed(RuntimeError):
    """The Spark job exited non-zero; the message ends with its last lines of output."""


class StagedRunNotValidated(ValueError):
    """Publishing a staged run that has no successful validation of that same run."""


class PipelineResult(BaseModel):
    view: str
    version: int
    run_id: str
    """The compute run, also the staged run's id."""
    start: datetime
    end: datetime
    staged_rows: int
    published_rows: int
    validation: ValidationReport


def stage(
    settings: Settings,
    registry: Registry,
    request: ComputeRequest,
    launch: Callable[[SparkJob], object] | None = None,
) -> StagedRun:
    """Compute the request's interval with Spark into a staged run: the `compute` run.

    `launch` starts the job (default: spark-submit as a subprocess; the DAG passes its
    SparkSubmitOperator). Raises ComputeFailed when the job fails.
    """
    view = request.view
    record = RunRecord.of_interval(
        "compute", view, request.start, request.end, run_id=request.run_id
    )
    record.details["retile"] = request.retile
    with registry.run(record) as run:
        # A lander or extract killed mid-batch is recovered first, or compute refuses
        # (LandingIncomplete): Spark never reads a half-written landing zone.
        ensure_landing_complete(settings, view.source.name)
        path = request.write(staging_dir(settings, view.name, request.run_id))
        job = compute_job(str(path), view.name)
        try:
            if launch is None:
                reads = partial(
                    landed_bytes,
                    settings,
                    view.source.name,
                    *read_range(view, request.start, request.end),
                )
                submit(settings, job, description=f"compute of {view.name}", input_bytes=reads)
            else:
                launch(job)
        except SparkJobFailed as e:
            raise ComputeFailed(str(e)) from e
        staged = StagedRun.find(settings, view.name, request.run_id)
        run.rows = staged.rows
    return staged


def validate(settings: Settings, registry: Registry, staged: StagedRun) -> ValidationReport:
    """Validate a staged run with its view's suite (the `validate` run).

    Raises `QualityGateFailed` (carrying the report) when the suite failed: nothing may publish
    the run then. A drift flag is a warning in the report, not a failure.
    """
    from jstore.quality import validate_staged

    report = validate_staged(settings, registry, staged.request().view, staged)
    if not report.success:
        raise QualityGateFailed(report)
    return report


def publish(settings: Settings, registry: Registry, staged: StagedRun) -> int:
    """Publish a validated staged run: replace its interval, then extend the view's coverage.

    Refuses (`StagedRunNotValidated`) a run without a successful validation of that same run
    (same view version, interval and rows). Recorded as a `publish` run. Coverage is added
    only after the commit, so a crash leaves both the rows and the coverage as they were;
    publishing the same run again is harmless.
    """
    from jstore.offline import OfflineStore

    view = staged.request().view
    check_validated(registry, staged)
    record = RunRecord.of_interval("publish", view, staged.start, staged.end)
    record.details["staged_run_id"] = staged.run_id
    with registry.run(record) as run:
        with OfflineStore(settings) as store:
            run.rows = store.publish(view, staged)
        registry.add_coverage(view.name, view.version, staged.start, staged.end)
    return run.rows


def check_validated(registry: Registry, staged: StagedRun) -> None:
    passed = registry.passed_validation(staged.view, staged.version, staged.run_id)
    if passed is None or (passed.start, passed.end, passed.rows) != (
        staged.start,
        staged.end,
        staged.rows,
    ):
        raise StagedRunNotValidated(
            f"run_id: staged run {staged.run_id} of {staged.view} v{staged.version} has no "
            "successful validation; validate it first (`jstore validate`)"
        )


def compute(settings: Settings, registry: Registry, request: ComputeRequest) -> PipelineResult:
    """Stage the request's interval with Spark, validate it, and publish it if valid.

    Validation's own start (importing Great Expectations, its context) is prepared in a thread
    while the Spark job runs in its process."""
    from jstore.quality.validate import prepare_validation

    with ThreadPoolExecutor(1, thread_name_prefix="prepare-validation") as executor:
        prepared = executor.submit(prepare_validation, settings)
        staged = stage(settings, registry, request)
        with phases.timed("validate"):
            prepared.result()
    with phases.timed("validate"):
        report = validate(settings, registry, staged)
    with phases.timed("publish"):
        published = publish(settings, registry, staged)
    return PipelineResult(
        view=request.view.name,
        version=request.view.version,
        run_id=request.run_id,
        start=staged.start,
        end=staged.end,
        staged_rows=staged.rows,
        published_rows=published,
        validation=report,
    )
