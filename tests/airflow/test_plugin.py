"""The Airflow UI plugin: its "Feature store" menu entries and the catalog page it serves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jstore.config import Settings

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "jstore_plugin.py"


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("jstore_plugin_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_menu_links_web_ui_catalog_quality_reports_and_api(plugin) -> None:
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    entries = plugin.menu_entries(Settings(api_url="http://features.example:8765/"))
    views = [ExternalViewResponse.model_validate(e) for e in entries]
    assert [(v.name, v.href, v.url_route, v.category) for v in views] == [
        ("Web UI", "http://features.example:8765/ui/", None, "Feature store"),
        ("Catalog", "/jstore/catalog", "jstore_catalog", "Feature store"),
        (
            "Quality reports",
            "http://features.example:8765/ui/quality/",
            "jstore_quality",
            "Feature store",
        ),
        ("Feature store API", "http://features.example:8765/docs", None, "Feature store"),
    ]


def test_plugin_mounts_the_catalog_app(plugin) -> None:
    from airflow.plugins_manager import AirflowPlugin

    assert issubclass(plugin.JStorePlugin, AirflowPlugin)
    assert plugin.JStorePlugin.fastapi_apps[0]["url_prefix"] == "/jstore"
    assert plugin.JStorePlugin.fastapi_apps[0]["app"] is plugin.catalog_app


def test_catalog_lists_views_from_the_snapshot(plugin, example_snapshot, monkeypatch) -> None:
    monkeypatch.setenv("JSTORE_REGISTRY_SNAPSHOT", str(example_snapshot))
    monkeypatch.setenv("JSTORE_API_URL", "http://api.test")
    page = TestClient(plugin.catalog_app).get("/catalog")
    assert page.status_code == 200
    assert "Project shop: 4 feature views" in page.text
    assert '<a href="/dags/jstore_compute_user_purchases" target="_top">DAG</a>' in page.text
    assert "http://api.test/v1/feature-views/merchant_sales" in page.text
    assert "<b>fraud_v1</b>" in page.text
    assert "http://api.test/quality/" in page.text


def test_catalog_without_snapshot_says_what_to_run(plugin, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JSTORE_REGISTRY_SNAPSHOT", str(tmp_path / "absent.json"))
    page = TestClient(plugin.catalog_app).get("/catalog")
    assert page.status_code == 200
    assert "run <code>jstore apply</code>" in page.text
