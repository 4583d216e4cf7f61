"""`/quality`: the Great Expectations Data Docs site, and `/quality/summary` (latest runs).

The site is `<lake>/quality/` without `gx/`, where GX keeps its raw validation results: only
the site's own parts (`SITE_PARTS`) are served, read through the lake's filesystem layer
(jstore/lake_fs.py), so a lake on an object store serves its reports the same way.
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import RedirectResponse

from jstore.config import Settings
from jstore.lake import quality_dir
from jstore.quality import latest_quality_summary
from serving.deps import ReadAccess, RegistryDep, SettingsDep
from serving.schemas import errors

router = APIRouter(
    prefix="/quality", tags=["quality"], dependencies=[ReadAccess], responses=errors(401, 404, 422)
)
MAX_RUNS = 100
SITE_PARTS = frozenset({"index.html", "static", "expectations", "validations"})
"""The first path segments of the Data Docs site (pages, suites, styles); nothing else is served."""


@router.get("/summary")
def summary(
    registry: RegistryDep,
    view: str | None = None,
    runs: Annotated[int, Query(ge=1, le=MAX_RUNS)] = 1,
) -> list[dict[str, Any]]:
    """The latest validation runs per view (status, failed expectations, drift)."""
    return latest_quality_summary(registry, view, runs)


@router.get("", include_in_schema=False)
def index() -> RedirectResponse:
    return RedirectResponse("/quality/")


@router.get("/{path:path}")
def data_docs(path: str, settings: SettingsDep) -> Response:
    """A file of the Data Docs site (`index.html` for the folder)."""
    return site_file(path, settings)


def site_file(path: str, settings: Settings) -> Response:
    """A file of the Data Docs site, only under its own parts (`SITE_PARTS`); the web UI
    serves the same files behind its login."""
    parts = PurePosixPath(path).parts
    if parts and (parts[0] not in SITE_PARTS or ".." in parts or "." in parts):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    file = quality_dir(settings).joinpath(*parts)
    if not parts or path.endswith("/"):
        file = file / "index.html"
    if not file.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return Response(file.read_bytes(), media_type=media_type)
