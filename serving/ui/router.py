"""The /ui pages: overview, entities, sources, views, a view, services, lineage, search, and the
Data Docs site under /ui/quality/ (the API serves it under /quality/ for `X-API-Key` clients;
a browser sends the UI's cookie instead)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from jstore.durations import format_duration
from jstore.registry import NotFound
from serving.deps import RegistryDep, SettingsDep
from serving.routers.quality import site_file
from serving.ui import catalog
from serving.ui.session import check_key, forget, remember, require_login, to_ui_root

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["duration"] = catalog.duration_text
templates.env.filters["iso"] = lambda ts: f"{ts:%Y-%m-%d %H:%M}" if ts else "-"
templates.env.filters["span"] = lambda td: format_duration(td) if td else "-"
templates.env.globals["run_duration"] = catalog.run_duration
templates.env.globals["ttl_text"] = catalog.ttl_text

router = APIRouter(prefix="/ui", include_in_schema=False)
LoggedIn = Depends(require_login)
Version = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    context.setdefault("query", "")
    return templates.TemplateResponse(request, template, {"root": to_ui_root(request), **context})


@router.get("")
def ui_index() -> RedirectResponse:
    return RedirectResponse("ui/", status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/static/ui.css")
def stylesheet() -> FileResponse:
    return FileResponse(HERE / "static" / "ui.css", media_type="text/css")


@router.get("/login")
def login_form(request: Request, next: str = "", key: str | None = None) -> Response:
    """The form; with `?key=`, the key is checked and kept as with the form."""
    if key is not None:
        return _log_in(request, key, next)
    return page(request, "login.html", next=next, error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode(errors="replace"))
    key = form.get("key", [""])[0]
    return _log_in(request, key, form.get("next", [""])[0])


def _log_in(request: Request, key: str, next_page: str) -> Response:
    try:
        check_key(request, key)
    except HTTPException as refused:
        response = page(request, "login.html", next=next_page, error=refused.detail)
        response.status_code = refused.status_code
        return response
    target = next_page if _is_ui_page(next_page) else ""
    response = RedirectResponse(f"./{target}", status.HTTP_303_SEE_OTHER)
    remember(response, request, key)
    return response


def _is_ui_page(path: str) -> bool:
    """Only a page below /ui/ (no scheme, host, `..` or leading slash) is a place to go back to."""
    parts = PurePosixPath(path).parts
    return bool(path) and ":" not in path and not path.startswith("/") and ".." not in parts


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("login", status.HTTP_303_SEE_OTHER)
    forget(response, request)
    return response


@router.get("/", dependencies=[LoggedIn])
def overview(request: Request, registry: RegistryDep) -> HTMLResponse:
    return page(
        request,
        "overview.html",
        rows=catalog.view_rows(registry),
        entities=registry.list_entities(),
        sources=registry.list_sources(),
        services=registry.list_services(),
    )


@router.get("/entities", dependencies=[LoggedIn])
def entities(request: Request, registry: RegistryDep) -> HTMLResponse:
    views = registry.list_views()
    return page(request, "entities.html", entities=registry.list_entities(), views=views)


@router.get("/sources", dependencies=[LoggedIn])
def sources(request: Request, registry: RegistryDep) -> HTMLResponse:
    views = registry.list_views()
    return page(request, "sources.html", sources=registry.list_sources(), views=views)


@router.get("/views", dependencies=[LoggedIn])
def views(request: Request, registry: RegistryDep) -> HTMLResponse:
    return page(request, "views.html", rows=catalog.view_rows(registry))


@router.get("/views/{name}", dependencies=[LoggedIn])
def view(
    request: Request,
    name: str,
    registry: RegistryDep,
    settings: SettingsDep,
    version: Version = None,
) -> HTMLResponse:
    try:
        details = catalog.view_page(registry, name, version, settings.drift_threshold)
    except NotFound as missing:
        response = page(request, "not_found.html", message=str(missing.args[0]))
        response.status_code = status.HTTP_404_NOT_FOUND
        return response
    return page(request, "view.html", p=details)


@router.get("/services", dependencies=[LoggedIn])
def services(request: Request, registry: RegistryDep) -> HTMLResponse:
    listed = [(s, catalog.service_views(s.features)) for s in registry.list_services()]
    return page(request, "services.html", services=listed)


@router.get("/lineage", dependencies=[LoggedIn])
def lineage(request: Request, registry: RegistryDep) -> HTMLResponse:
    picture = catalog.lineage_picture(catalog.lineage(registry), to_ui_root(request))
    return page(request, "lineage.html", picture=picture)


@router.get("/search", dependencies=[LoggedIn])
def search(request: Request, registry: RegistryDep, q: str = "") -> HTMLResponse:
    return page(request, "search.html", query=q, hits=catalog.search(registry, q))


@router.get("/quality/{path:path}", dependencies=[LoggedIn])
def data_docs(path: str, settings: SettingsDep) -> Response:
    """A file of the Data Docs site, as /quality/ serves it to API clients."""
    return site_file(path, settings)


def quality_link(report_page: str | None) -> str | None:
    return f"quality/{quote(report_page)}" if report_page else None


templates.env.globals["quality_link"] = quality_link
