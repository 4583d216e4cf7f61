"""The Airflow UI plugin: its "Feature store" menu links, and no page of its own."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from jstore.config import Settings

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "jstore_plugin.py"


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("jstore_plugin_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def menu(plugin, api_url: str) -> list[tuple]:
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    entries = plugin.menu_entries(Settings(api_url=api_url))
    views = [ExternalViewResponse.model_validate(e) for e in entries]
    return [(v.name, v.href, v.url_route, v.category) for v in views]


def test_menu_links_the_web_ui_its_quality_reports_and_the_api(plugin) -> None:
    assert menu(plugin, "http://features.example:8765/") == [
        ("Web UI", "http://features.example:8765/ui/", None, "Feature store"),
        ("Quality reports", "http://features.example:8765/ui/quality/", None, "Feature store"),
        ("Feature store API", "http://features.example:8765/docs", None, "Feature store"),
    ]


def test_an_api_behind_the_same_proxy_gets_relative_links(plugin) -> None:
    assert menu(plugin, "/features") == [
        ("Web UI", "/features/ui/", None, "Feature store"),
        ("Quality reports", "/features/ui/quality/", None, "Feature store"),
        ("Feature store API", "/features/docs", None, "Feature store"),
    ]


def test_plugin_serves_no_page_airflow_would_not_authenticate(plugin) -> None:
    from airflow.plugins_manager import AirflowPlugin

    assert issubclass(plugin.JStorePlugin, AirflowPlugin)
    assert not plugin.JStorePlugin.fastapi_apps
    assert not plugin.JStorePlugin.fastapi_root_middlewares
    assert [v["name"] for v in plugin.JStorePlugin.external_views] == [
        "Web UI",
        "Quality reports",
        "Feature store API",
    ]
