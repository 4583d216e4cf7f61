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


def test_only_the_data_docs_site_is_served_not_the_raw_gx_results(client, api_settings):
    docs = quality_dir(api_settings)
    (docs / "gx" / "validations").mkdir(parents=True)
    (docs / "gx" / "validations" / "result.json").write_text("{}")
    (docs / "static" / "styles").mkdir(parents=True)
    (docs / "static" / "styles" / "site.css").write_text("h1 {}")
    (docs / "expectations").mkdir()
    (docs / "expectations" / "suite.html").write_text("<p>suite</p>")
    (docs / "notes.txt").write_text("not part of the site")

    assert client.get("/quality/static/styles/site.css", headers=READ).text == "h1 {}"
    assert client.get("/quality/expectations/suite.html", headers=READ).text == "<p>suite</p>"
    assert client.get("/quality/gx/validations/result.json", headers=READ).status_code == 404
    assert client.get("/quality/gx/", headers=READ).status_code == 404
    assert client.get("/quality/notes.txt", headers=READ).status_code == 404
    escape = "/quality/validations/%2E%2E/gx/validations/result.json"
    assert client.get(escape, headers=READ).status_code == 404


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
