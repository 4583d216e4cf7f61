"""`compute` = stage (Spark) → validate (Great Expectations) → publish, as the CLI and DAGs run it.

Write-audit-publish: a staged run is published only after its suite passed; a failed suite
raises `QualityGateFailed` and leaves the offline store and the coverage as they were.

Runs in the registry: one `compute` run for the whole pipeline (its `details` name the
validate and publish runs), the `validate` run the quality gate records, and one `publish` run.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from jstore.config import Settings
from jstore.durations import as_utc
from jstore.model import ResolvedView
from jstore.offline import OfflineStore
from jstore.quality.report import QualityGateFailed, ValidationReport
from jstore.registry import Registry, RunRecord, new_run_id
from jstore.staging import StagedRun


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


def publish_staged(settings: Settings, registry: Registry, staged: StagedRun) -> int:
    """Publish a staged run: replace its interval, then extend the view's coverage.

    Recorded as a `publish` run. Coverage is added only after the commit, so a crash leaves
    both the rows and the coverage as they were; publishing the same run again is harmless.
    """
    view = registry.get_view(staged.view, staged.version)
    run_id = registry.record_run(
        RunRecord(
            run_id=new_run_id("publish"),
            kind="publish",
            subject=view.name,
            version=view.version,
            start=staged.start,
            end=staged.end,
            details={"staged_run": staged.run_id},
        )
    )
    try:
        with OfflineStore(settings) as store:
            rows = store.publish(view, staged)
        registry.add_coverage(view.name, view.version, staged.start, staged.end)
    except Exception as e:
        registry.finish_run(run_id, "failed", error=str(e))
        raise
    registry.finish_run(run_id, "success", rows=rows)
    return rows


def validate_and_publish(
    settings: Settings, registry: Registry, view: ResolvedView, staged: StagedRun
) -> tuple[ValidationReport, int]:
    """The gate: validate the staged run, publish it only if its suite passed.

    Raises `QualityGateFailed` (carrying the report) and publishes nothing when it failed.
    """
    from jstore.quality import validate_staged

    report = validate_staged(settings, registry, view, staged)
    if not report.success:
        raise QualityGateFailed(report)
    return report, publish_staged(settings, registry, staged)


def compute(
    settings: Settings,
    registry: Registry,
    view: str,
    start: datetime,
    end: datetime,
    run_id: str | None = None,
) -> PipelineResult:
    """Stage [start, end) of `view` with Spark, validate it, and publish it if valid."""
    from jstore.compute import check_interval, stage

    resolved = registry.get_view(view)
    check_interval(resolved, start, end)
    run_id = registry.record_run(
        RunRecord(
            run_id=run_id or new_run_id("compute"),
            kind="compute",
            subject=resolved.name,
            version=resolved.version,
            start=as_utc(start),
            end=as_utc(end),
        )
    )
    try:
        staged = stage(settings, registry, resolved.name, start, end, run_id, resolved.version)
        report, published = validate_and_publish(settings, registry, resolved, staged)
    except QualityGateFailed as e:
        registry.finish_run(
            run_id,
            "failed",
            error=str(e),
            details={"validate_run": e.report.run_id, "published": False},
        )
        raise
    except Exception as e:
        registry.finish_run(run_id, "failed", error=str(e))
        raise
    registry.finish_run(
        run_id,
        "success",
        rows=staged.rows,
        details={"validate_run": report.run_id, "published_rows": published},
    )
    return PipelineResult(
        view=resolved.name,
        version=resolved.version,
        run_id=run_id,
        start=staged.start,
        end=staged.end,
        staged_rows=staged.rows,
        published_rows=published,
        validation=report,
    )
