"""The JStore API: `create_app(settings)` wires the routers, the stores and the error handling.

Run it with `jstore serve`, or `uvicorn serving.app:app` (settings from `JSTORE_*`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jstore.config import Settings, get_settings
from jstore.errors import InputError
from jstore.online.lookup import OnlineLookup
from jstore.online.store import OnlineReader
from jstore.registry import NotFound, Registry
from serving.auth import KeyChecker
from serving.json_values import FiniteJSONResponse
from serving.metrics import Metrics
from serving.routers import health, online, quality, registry, training_sets
from serving.ui.router import router as ui_router

LOCATIONS = ("body", "query", "path", "header", "cookie")
"""Where FastAPI found a value; left out of the field names in error messages."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    keys = KeyChecker(settings.api_keys, settings.api_auth_disabled)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.reader.close()
        app.state.registry.close()

    app = FastAPI(
        title="JStore",
        summary="Online features, point-in-time training sets, the registry and data quality.",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=FiniteJSONResponse,
    )
    store_registry = Registry(settings)
    reader = OnlineReader(settings)
    app.state.settings = settings
    app.state.keys = keys
    app.state.registry = store_registry
    app.state.reader = reader
    app.state.lookup = OnlineLookup(settings, store_registry, reader)
    app.state.metrics = Metrics()

    for router in (
        online.router,
        training_sets.router,
        registry.router,
        quality.router,
        health.router,
    ):
        app.include_router(router)
    app.include_router(ui_router)
    app.add_exception_handler(HTTPException, _refused)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(InputError, _invalid_input)
    app.add_exception_handler(NotFound, _not_found)
    app.add_middleware(LatencyMiddleware, metrics=app.state.metrics)
    return app


async def _refused(request: Request, exc: Exception) -> FiniteJSONResponse:
    assert isinstance(exc, HTTPException)
    return FiniteJSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


async def _invalid_request(request: Request, exc: Exception) -> FiniteJSONResponse:
    """One line naming the field: `entities: Field required`."""
    assert isinstance(exc, RequestValidationError)
    messages = []
    for err in exc.errors():
        loc = err["loc"][1:] if err["loc"] and err["loc"][0] in LOCATIONS else err["loc"]
        where = ".".join(str(p) for p in loc)
        message = err["msg"].removeprefix("Value error, ")
        messages.append(f"{where}: {message}" if where else message)
    return FiniteJSONResponse({"detail": "; ".join(messages)}, status_code=422)


async def _invalid_input(request: Request, exc: Exception) -> FiniteJSONResponse:
    return FiniteJSONResponse({"detail": str(exc)}, status_code=422)


async def _not_found(request: Request, exc: Exception) -> FiniteJSONResponse:
    return FiniteJSONResponse({"detail": exc.args[0] if exc.args else str(exc)}, status_code=404)


class LatencyMiddleware:
    """Request latency per route template (pure ASGI: no per-request task or body copy)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(scope["method"], route, str(status_code)).observe(
                time.perf_counter() - started
            )


def __getattr__(name: str) -> FastAPI:
    """`serving.app:app` for uvicorn, built on first access from the environment's settings."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
