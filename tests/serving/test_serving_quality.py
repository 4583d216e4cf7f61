"""/quality: the Data Docs files under <lake>/quality, and the latest validation runs as JSON."""

from __future__ import annotations

from jstore.lake import quality_dir
from jstore.registry import RunRecord
from tests.online.online_helpers import apply_clicks
from tests.serving.conftest import READ


def test_data_docs_are_served_from_the_lake(client, api_settings):
    docs = quality_dir(api_settings)
    (docs / "validations").mkdir(parents=True)
    (docs / "index.html").write_text("<h1>Data Docs</h1>")
    (docs / "validations" / "run.html").write_text("<p>run</p>")

    assert client.get("/quality/", headers=READ).text == "<h1>Data Docs</h1>"
    assert client.get("/quality/validations/run.html", headers=READ).text == "<p>run</p>"
    assert client.get("/quality/nothing.html", headers=READ).status_code == 404
    assert client.get("/quality/../../etc/passwd", headers=READ).status_code == 404
    assert client.get("/quality/index.html").status_code == 401


def test_summary_of_the_latest_validation_per_view(client, registry):
    apply_clicks(registry)
    assert client.get("/quality/summary", headers=READ).json() == []
    run_id = registry.record_run(
        RunRecord(run_id="validate-1", kind="validate", subject="user_clicks", version=1)
    )
    registry.finish_run(run_id, "failed", rows=3, details={"failed": ["count_1h: below 0"]})

    (summary,) = client.get("/quality/summary", headers=READ).json()

    assert (summary["view"], summary["run_id"], summary["status"], summary["failed"]) == (
        "user_clicks",
        "validate-1",
        "failed",
        ["count_1h: below 0"],
    )
