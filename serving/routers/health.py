"""`/health` (the process answers), `/ready` (every backing server answers), `/metrics`."""

from __future__ import annotations

import psycopg
from anyio import to_thread
from fastapi import APIRouter, Response, status

from serving.deps import MetricsDep, ReaderDep, RegistryDep, SettingsDep
from serving.schemas import ReadyResponse, ServerCheck

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", response_model=ReadyResponse)
async def ready(
    response: Response, settings: SettingsDep, registry: RegistryDep, reader: ReaderDep
) -> ReadyResponse:
    """200 when Redis, PostgreSQL and MongoDB all answer, else 503 naming the failing ones."""
    servers = {
        "redis": await _check_async(reader.ping),
        "postgres": await to_thread.run_sync(_check, lambda: _postgres(settings.postgres_dsn)),
        "mongodb": await to_thread.run_sync(_check, lambda: registry.client.admin.command("ping")),
    }
    ok = all(s.ok for s in servers.values())
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return ReadyResponse(ready=ok, servers=servers)


@router.get("/metrics", include_in_schema=False)
def metrics(m: MetricsDep) -> Response:
    return Response(m.exposition(), media_type="text/plain; version=0.0.4")


def _postgres(dsn) -> None:
    with psycopg.connect(dsn.get_secret_value(), connect_timeout=2) as conn:
        conn.execute("SELECT 1")


def _check(probe) -> ServerCheck:
    try:
        probe()
    except Exception as e:
        return ServerCheck(ok=False, error=f"{type(e).__name__}: {e}")
    return ServerCheck(ok=True)


async def _check_async(probe) -> ServerCheck:
    try:
        await probe()
    except Exception as e:
        return ServerCheck(ok=False, error=f"{type(e).__name__}: {e}")
    return ServerCheck(ok=True)
