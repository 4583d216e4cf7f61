"""The registry over REST: list, get and register entities, sources, feature views and services.

Definitions travel in the same JSON shape as the models (`jstore.repo.parse_definition`);
registering one is `Registry.register`, checked against what is stored, and needs a write key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, status

from jstore.durations import iso, parse_timestamp
from jstore.model import ResolvedView
from jstore.online.lookup import entity_keys
from jstore.registry import Registry
from jstore.repo import parse_definition
from serving.deps import ReadAccess, RegistryDep, SettingsDep, WriteAccess
from serving.json_values import first_unfit
from serving.schemas import FeatureViewOut, HistoryResponse, RegisterResponse, errors

router = APIRouter(
    prefix="/v1", tags=["registry"], dependencies=[ReadAccess], responses=errors(401, 404, 422)
)
Definition = Body(..., description="The definition as JSON, the same shape as the model.")
Writes = {"dependencies": [WriteAccess], "responses": errors(400, 403)}
Version = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="A version, 1, 2, …")]


def _register(registry: Registry, kind: str, body: dict[str, Any]) -> RegisterResponse:
    for field, value in body.items():
        if (why := first_unfit(value, field)) is not None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, why)
    change = registry.register(parse_definition(kind, body))
    return RegisterResponse(
        kind=change.kind, name=change.name, action=change.action, version=change.version
    )


def _dump(definition: Any) -> dict[str, Any]:
    return definition.model_dump(mode="json", by_alias=True)


def _definition_routes(
    kind: str,
    path: str,
    one: str,
    many: str,
    listed: Callable[[Registry], list[Any]],
    got: Callable[[Registry, str], Any],
) -> None:
    """List, get and register one kind of unversioned definition (entities, sources, feature
    services): the same three routes for each, named `list_<many>`, `get_<one>` and
    `register_<one>`."""

    def list_all(registry: RegistryDep) -> list[dict[str, Any]]:
        return [_dump(d) for d in listed(registry)]

    def get_one(name: str, registry: RegistryDep) -> dict[str, Any]:
        return _dump(got(registry, name))

    def register(registry: RegistryDep, body: dict[str, Any] = Definition) -> RegisterResponse:
        return _register(registry, kind, body)

    router.add_api_route(path, list_all, methods=["GET"], name=f"list_{many}")
    router.add_api_route(path + "/{name}", get_one, methods=["GET"], name=f"get_{one}")
    router.add_api_route(path, register, methods=["POST"], name=f"register_{one}", **Writes)


_definition_routes(
    "entity", "/entities", "entity", "entities", Registry.list_entities, Registry.get_entity
)
_definition_routes(
    "source", "/sources", "source", "sources", Registry.list_sources, Registry.get_source
)
_definition_routes(
    "feature service",
    "/feature-services",
    "service",
    "services",
    Registry.list_services,
    Registry.get_service,
)


def _view_out(registry: Registry, view: ResolvedView) -> FeatureViewOut:
    return FeatureViewOut(
        name=view.name,
        version=view.version,
        versions=registry.view_versions(view.name),
        definition=_dump(view.definition),
        join_keys=view.join_keys,
        features=view.features,
        coverage=[(iso(s), iso(e)) for s, e in registry.coverage(view.name, view.version)],
    )


@router.get("/feature-views")
def list_views(
    registry: RegistryDep,
    tag: str | None = None,
    entity: str | None = None,
    owner: str | None = None,
) -> list[FeatureViewOut]:
    """Current versions; `tag` is `key` or `key=value`."""
    return [
        _view_out(registry, v) for v in registry.list_views(tag=tag, entity=entity, owner=owner)
    ]


@router.get("/feature-views/{name}")
def get_view(name: str, registry: RegistryDep, version: Version = None) -> FeatureViewOut:
    """The current version, or `?version=N` (or `name@vN`)."""
    return _view_out(registry, registry.get_view(name, version))


@router.post("/feature-views", **Writes)
def register_view(registry: RegistryDep, body: dict[str, Any] = Definition) -> RegisterResponse:
    return _register(registry, "feature view", body)


@router.get("/feature-views/{name}/history")
def history(
    name: str,
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    start: str | None = None,
    end: str | None = None,
) -> HistoryResponse:
    """One entity's stored rows with start <= feature_ts < end; the join keys are query params."""
    from jstore.offline import OfflineStore

    view = registry.get_view(name)
    params = {k: v for k, v in request.query_params.items() if k not in ("start", "end")}
    unknown = sorted(set(params) - set(view.join_keys))
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{unknown[0]}: not a join key of {view.name} ({', '.join(view.join_keys)})",
        )
    try:
        (key,) = entity_keys(view, [params])
    except ValueError as e:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, str(e).removeprefix("entities.0.")
        ) from None
    bounds = {"start": _timestamp("start", start), "end": _timestamp("end", end)}
    entity = dict(zip(view.join_keys, key, strict=True))
    with OfflineStore(settings) as store:
        rows = store.history(view, entity, bounds["start"], bounds["end"])
    wire = [{k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()} for row in rows]
    return HistoryResponse(view=view.name, version=view.version, entity=entity, rows=wire)


def _timestamp(field: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{field}: {e}") from None
    except OverflowError:
        message = f"{field}: {text!r} is outside the range of timestamps"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message) from None
