"""`/quality`: the Great Expectations Data Docs folder, and `/quality/summary` (latest runs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from jstore.lake import quality_dir
from jstore.quality import latest_quality_summary
from serving.deps import ReadAccess, RegistryDep, SettingsDep

router = APIRouter(prefix="/quality", tags=["quality"], dependencies=[ReadAccess])


@router.get("/summary")
def summary(registry: RegistryDep, view: str | None = None, runs: int = 1) -> list[dict[str, Any]]:
    """The latest validation runs per view (status, failed expectations, drift)."""
    return latest_quality_summary(registry, view, runs)


@router.get("", include_in_schema=False)
def index() -> RedirectResponse:
    return RedirectResponse("/quality/")


@router.get("/{path:path}")
async def data_docs(path: str, request: Request, settings: SettingsDep) -> Response:
    """A file of the Data Docs site (`index.html` for the folder)."""
    docs = StaticFiles(directory=quality_dir(settings), html=True, check_dir=False)
    return await docs.get_response(path or ".", request.scope)
