"""Who may see the UI: the API's own keys, given once in the login form (or as `?key=`) and kept
in a cookie.

The cookie holds the key itself, as the `X-API-Key` header would: HttpOnly (no script reads
it), SameSite=Strict (no other site's page sends it), Secure on https, and scoped to the UI's
path. Nothing else is stored server-side; removing a key from `Settings.api_keys` ends every
session using it.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import HTTPException, Request, Response, status

from serving.auth import KeyChecker

COOKIE = "jstore_ui_key"


def below_ui(request: Request) -> str:
    """The request's path below /ui/: `views/x` for /ui/views/x (under any root_path)."""
    path = request.scope["path"]
    root_path = request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path.removeprefix("/ui").lstrip("/")


def to_ui_root(request: Request) -> str:
    """The relative link from the requested page to /ui/: every link of a page starts with it,
    so the UI works under any base-URL sub-path a proxy puts it."""
    return "../" * below_ui(request).count("/") or "./"


def check_key(request: Request, key: str | None) -> None:
    """401/403 as the API answers, for a missing, unknown or too weak key."""
    checker: KeyChecker = request.app.state.keys
    checker.check(key, "read")


def require_login(request: Request) -> None:
    """A dependency of every UI page: without a valid cookie, a redirect to the login form
    that comes back to the page (303, relative to /ui)."""
    checker: KeyChecker = request.app.state.keys
    if checker.disabled:
        return
    given = request.query_params.get("key")
    try:
        if given is not None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED)
        check_key(request, request.cookies.get(COOKIE))
    except HTTPException:
        query = f"next={quote(below_ui(request))}"
        if given is not None:
            query += f"&key={quote(given)}"
        location = f"{to_ui_root(request)}login?{query}"
        raise HTTPException(
            status.HTTP_303_SEE_OTHER, "log in first", headers={"Location": location}
        ) from None


def remember(response: Response, request: Request, key: str) -> None:
    """Set the cookie from /ui/login without a Path: the browser scopes it to the folder it
    asked, /ui as it sees it, whatever prefix a proxy added."""
    response.set_cookie(
        COOKIE,
        key,
        path=None,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def forget(response: Response, request: Request) -> None:
    response.set_cookie(COOKIE, "", max_age=0, path=None, httponly=True, samesite="strict")
