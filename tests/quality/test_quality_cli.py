"""`jstore quality` and `latest_quality_summary`: what the CLI and the API's /quality show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jstore.lake_fs import lake_root
from jstore.quality import latest_quality_summary, validate_staged
from tests.quality.purchase_rows import purchase_row

JSTORE = Path(sys.executable).parent / "jstore"


def jstore(settings, *args):
    env = os.environ | {"JSTORE_MONGO_DB": settings.mongo_db, "JSTORE_LAKE_URI": settings.lake_uri}
    return subprocess.run([JSTORE, *args], capture_output=True, text=True, env=env, check=False)


def test_the_latest_runs_show_status_failures_and_report(settings, registry, user_purchases, stage):
    rows = [purchase_row("u1", 1), purchase_row("u2", 2, count_1h=-1)]
    report = validate_staged(settings, registry, user_purchases, stage(rows, run_id="compute-x"))

    (summary,) = latest_quality_summary(registry)
    assert summary | {"statistics": {}, "finished_at": None} == {
        "view": "user_purchases",
        "version": 1,
        "run_id": report.run_id,
        "staged_run_id": "compute-x",
        "status": "failed",
        "start": "2024-05-01T00:00:00Z",
        "end": "2024-05-01T06:00:00Z",
        "finished_at": None,
        "rows": 2,
        "failed": report.failed,
        "error": "1 expectations failed",
        "statistics": {},
        "drift": {},
        "drift_flagged": [],
        "report_path": report.report_path,
        "report_page": str(Path(report.report_path).relative_to(lake_root(settings) / "quality")),
    }
    assert summary["statistics"] == report.statistics

    shown = jstore(settings, "quality", "user_purchases", "--runs", "3")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "user_purchases v1  FAILED   [2024-05-01T00:00:00Z, 2024-05-01T06:00:00Z)  "
        f"2 rows  {report.run_id} (staged run compute-x)",
        f"  failed: {report.failed[0]}",
        f"  report: {report.report_path}",
    ]


def test_an_unknown_view_is_one_line_and_a_non_zero_exit(settings, registry, user_purchases):
    shown = jstore(settings, "quality", "no_such_view")

    assert (shown.returncode, shown.stdout) == (2, "")
    assert shown.stderr == "jstore: unknown feature view 'no_such_view'\n"
