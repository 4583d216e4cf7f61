"""The "Feature store" menu of the Airflow UI: links to JStore's web UI, quality reports and API.

Airflow 3 plugins add UI entries as `external_views`. Airflow does not authenticate the pages a
plugin serves itself (`fastapi_apps`), so this plugin serves none: every entry is a link to the
JStore API server (`Settings.api_url`), whose web UI (`/ui/`) and copy of the quality reports
(Great Expectations Data Docs, `/ui/quality/`) ask for an API key in their login form
(docs/ui.md). The entries open those pages as they are, not in a frame: the login cookie is
`SameSite=Strict`, which a browser does not send to a frame of another site. When the API is
served behind the same proxy as Airflow, `JSTORE_API_URL` may be a path (`/features`): the
links are then relative to the host, not absolute.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from jstore.config import Settings

CATEGORY = "Feature store"


def menu_entries(settings: Settings) -> list[dict]:
    """The menu's links, under `settings.api_url` (a URL, or a path on Airflow's host)."""
    api = settings.api_url.rstrip("/")
    pages = [
        ("Web UI", "/ui/"),
        ("Quality reports", "/ui/quality/"),
        ("Feature store API", "/docs"),
    ]
    return [{"name": name, "href": f"{api}{path}", "category": CATEGORY} for name, path in pages]


class JStorePlugin(AirflowPlugin):
    name = "jstore"
    external_views = menu_entries(Settings())
