"""What a validation run tells its caller: the gate's verdict, the statistics and the drift."""

from __future__ import annotations

from pydantic import BaseModel


class ValidationReport(BaseModel):
    run_id: str
    """The `validate` run in the registry."""
    staged_run_id: str
    """The compute run whose staged rows were validated."""
    view: str
    version: int
    success: bool
    failed: list[str]
    """One readable line per failed expectation."""
    statistics: dict[str, dict]
    """Per feature: rows, null share, mean, stddev, quantiles (numeric) or distinct (string)."""
    drift: dict[str, float]
    """Per numeric feature: PSI against the previous successful validate run of the version."""
    drift_flagged: list[str]
    """Features whose drift is above `Settings.drift_threshold` (a warning, not a failure)."""
    report_path: str
    """The run's Data Docs page; its JSON summary lies beside it (`.summary.json`)."""
    rows: int


class QualityGateFailed(Exception):
    """A staged run failed its suite: it must not be published."""

    def __init__(self, report: ValidationReport):
        self.report = report
        lines = "\n".join(f"  - {line}" for line in report.failed)
        super().__init__(
            f"{report.view} v{report.version}: {len(report.failed)} expectations failed on "
            f"staged run {report.staged_run_id} (report: {report.report_path})\n{lines}"
        )
