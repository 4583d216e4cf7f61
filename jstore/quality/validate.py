"""The quality gate: validate a staged run before it is published (write-audit-publish)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jstore.config import Settings
from jstore.lake import quality_dir
from jstore.lake_fs import LakePath, local_mirror
from jstore.model import ResolvedView
from jstore.quality import charts
from jstore.quality.drift import drift_scores
from jstore.quality.report import ValidationReport
from jstore.quality.statistics import feature_statistics
from jstore.registry import Registry, RunRecord
from jstore.repo import DefinitionError
from jstore.staging import StagedRun, staged_columns


def validate_staged(
    settings: Settings, registry: Registry, view: ResolvedView, staged: StagedRun
) -> ValidationReport:
    """Validate the staged rows with the view's suite, compute their statistics and drift.

    Records a `validate` run in the registry (details: failed expectations, statistics, drift)
    and renders the run's Data Docs page. The report is returned whatever the verdict: the
    caller must not publish when `report.success` is false, but raise `QualityGateFailed`.
    A drift flag is a warning; it does not fail the gate.
    """
    # Great Expectations takes seconds to import: only validation pays for it.
    from jstore.quality import findings, gx_context, suites

    if (staged.view, staged.version) != (view.name, view.version):
        raise DefinitionError(
            f"staged run {staged.run_id} is {staged.view} v{staged.version}, "
            f"not {view.name} v{view.version}"
        )
    suite = suites.build_suite(settings, view, staged)
    table = read_staged(staged, staged_columns(view))
    index_columns = [*view.join_keys, "feature_ts"]
    run = RunRecord.of_interval("validate", view, staged.start, staged.end, rows=table.num_rows)
    run.details["staged_run_id"] = staged.run_id
    docs = quality_dir(settings)
    with registry.run(run), local_mirror(docs, download=gx_context.STORES) as local_docs:
        result, page = gx_context.run_checkpoint(
            local_docs,
            suite,
            suites.checked_frame(table, view),
            run_name=staged.run_id,
            index_columns=index_columns,
        )
        statistics = feature_statistics(table, view)
        previous = previous_statistics(registry, view)
        drift = drift_scores(table, view, previous) if previous else {}
        report = ValidationReport(
            run_id=run.run_id,
            staged_run_id=staged.run_id,
            view=view.name,
            version=view.version,
            success=bool(result.success),
            failed=findings.failed_lines(result, index_columns),
            statistics=statistics,
            drift=drift,
            drift_flagged=sorted(f for f, s in drift.items() if s > settings.drift_threshold),
            report_path=str(docs / page.relative_to(local_docs).as_posix()),
            rows=table.num_rows,
        )
        summary_path(page).write_text(report.model_dump_json(indent=2))
        history = [
            *drift_history(registry, view),
            {"label": f"{staged.start:%m-%d %H:%M}", "drift": drift},
        ]
        charts.add_charts(
            page, charts.report_section(statistics, previous, history, settings.drift_threshold)
        )
        run.details = run_details(report, docs)
        if not report.success:
            run.status, run.error = "failed", f"{len(report.failed)} expectations failed"
    return report


def prepare_validation(settings: Settings) -> None:
    """Import Great Expectations, build the quality folder's context and compile the report's
    templates: the seconds a first validation in a process pays, which `jstore compute` spends
    while its Spark job runs."""
    from jstore.quality import findings, gx_context, report_templates, suites  # noqa: F401

    gx_context.data_context(quality_dir(settings))
    report_templates.compile_all()


def read_staged(staged: StagedRun, columns: list[str]) -> pa.Table:
    """All rows of a staged run; a run without files is an empty table of the view's columns."""
    files = staged.parquet_files
    if not files:
        return pa.table({c: pa.array([], pa.null()) for c in columns})
    return pq.read_table([f.path for f in files], partitioning=None, filesystem=staged.path.fs)


def previous_statistics(registry: Registry, view: ResolvedView) -> dict[str, dict] | None:
    """The statistics of the latest successful validate run of the same view version."""
    runs = registry.list_runs(
        kind="validate", subject=view.name, status="success", version=view.version, limit=1
    )
    return runs[0].details.get("statistics") if runs else None


def drift_history(registry: Registry, view: ResolvedView, runs: int = 30) -> list[dict[str, Any]]:
    """The drift scores of the latest validate runs of the view version, oldest first, labelled
    by the start of their interval (for the charts)."""
    latest = registry.list_runs(
        kind="validate", subject=view.name, version=view.version, limit=runs
    )
    return [
        {
            "label": f"{run.start:%m-%d %H:%M}" if run.start else run.run_id,
            "drift": run.details.get("drift", {}),
        }
        for run in reversed(latest)
        if run.status != "running"
    ]


def run_details(report: ValidationReport, docs_root: LakePath) -> dict[str, Any]:
    """What the registry keeps of a report; `report_page` is the page's path in the Data Docs
    site, for links (the API serves the site under /quality/)."""
    details = report.model_dump(
        include={"staged_run_id", "failed", "statistics", "drift", "drift_flagged", "report_path"}
    )
    details["report_page"] = docs_root.parse(report.report_path).relative_to(docs_root)
    return details


def summary_path(page: Path) -> Path:
    """The JSON summary beside a Data Docs page: the report, statistics and drift included."""
    return page.with_suffix(".summary.json")
