"""The "Feature store" menu of the Airflow UI: JStore's catalog, quality reports and API.

Airflow 3 plugins add UI entries as `external_views` (an `href` opened as a link, or embedded in
an iframe under `url_route`) and serve pages through `fastapi_apps` mounted in Airflow's API
server. This plugin mounts a small catalog page at `/jstore/catalog`, rendered from the registry
snapshot file (no database call: the same file the DAGs are built from), with each view's compute
DAG and its entries in the JStore API. The JStore web UI (`/ui/` of `Settings.api_url`) and its
copy of the quality reports (Great Expectations Data Docs, `/ui/quality/`) ask for an API key
once in their login form, then keep it in a cookie; the reports are embedded as they are.
"""

from __future__ import annotations

from html import escape

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from jstore.config import Settings
from jstore.durations import format_duration
from jstore.model import ResolvedView
from jstore.orchestration import load_snapshot

CATEGORY = "Feature store"
URL_PREFIX = "/jstore"

catalog_app = FastAPI(title="JStore catalog in Airflow", docs_url=None, redoc_url=None)


def _view_row(view: ResolvedView, api_url: str) -> str:
    features = ", ".join(escape(f.name) for f in view.features)
    api = f"{api_url}/v1/feature-views/{view.name}"
    return (
        "<tr>"
        f"<td><b>{escape(view.name)}</b> v{view.version}<br><small>"
        f"{escape(view.definition.description)}</small></td>"
        f"<td>{escape(', '.join(view.join_keys))}</td>"
        f"<td>{format_duration(view.definition.step)}</td>"
        f"<td>{escape(view.source.name)}</td>"
        f"<td>{escape(view.definition.owner or '-')}</td>"
        f"<td><small>{features}</small></td>"
        f'<td><a href="/dags/jstore_compute_{view.name}" target="_top">DAG</a> · '
        f'<a href="{escape(api)}" target="_blank">API</a></td>'
        "</tr>"
    )


def render_catalog(settings: Settings) -> str:
    """The catalog page: every registered view, with its DAG and API links."""
    snapshot = load_snapshot(settings.registry_snapshot)
    api = settings.api_url.rstrip("/")
    if snapshot is None:
        body = (
            f"<p>No registry snapshot at <code>{escape(str(settings.registry_snapshot))}</code>: "
            "run <code>jstore apply</code>.</p>"
        )
    else:
        rows = "".join(_view_row(v, api) for v in snapshot.views.values())
        services = "".join(
            f"<li><b>{escape(s.name)}</b>: {escape(', '.join(s.features))}</li>"
            for s in snapshot.services.values()
        )
        body = (
            f"<h2>Project {escape(snapshot.project)}: {len(snapshot.views)} feature views</h2>"
            "<table><tr><th>view</th><th>keys</th><th>step</th><th>source</th><th>owner</th>"
            f"<th>features</th><th>links</th></tr>{rows}</table>"
            f"<h3>Feature services</h3><ul>{services}</ul>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>JStore catalog</title>"
        "<style>body{font-family:sans-serif;margin:1em}td,th{border-bottom:1px solid #ddd;"
        "padding:4px 8px;text-align:left;vertical-align:top}table{border-collapse:collapse}"
        f"</style></head><body>{body}<p><a href='{escape(api)}/quality/' target='_blank'>"
        f"Quality reports</a> · <a href='{escape(api)}/docs' target='_blank'>JStore API</a>"
        "</p></body></html>"
    )


@catalog_app.get("/catalog", response_class=HTMLResponse)
def catalog() -> str:
    return render_catalog(Settings())


def menu_entries(settings: Settings) -> list[dict]:
    api = settings.api_url.rstrip("/")
    return [
        {"name": "Web UI", "href": f"{api}/ui/", "category": CATEGORY},
        {
            "name": "Catalog",
            "href": f"{URL_PREFIX}/catalog",
            "url_route": "jstore_catalog",
            "category": CATEGORY,
            "destination": "nav",
        },
        {
            "name": "Quality reports",
            "href": f"{api}/ui/quality/",
            "url_route": "jstore_quality",
            "category": CATEGORY,
            "destination": "nav",
        },
        {"name": "Feature store API", "href": f"{api}/docs", "category": CATEGORY},
    ]


class JStorePlugin(AirflowPlugin):
    name = "jstore"
    fastapi_apps = [{"app": catalog_app, "url_prefix": URL_PREFIX, "name": "JStore catalog"}]
    external_views = menu_entries(Settings())
