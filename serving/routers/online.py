"""`POST /v1/online`: feature values of a batch of entities, one Redis round trip."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from jstore.online.lookup import OfflineUnavailable
from serving.deps import LookupDep, MetricsDep, ReadAccess, SettingsDep
from serving.json_values import check_rows, dumps
from serving.schemas import OnlineRequest, OnlineResponse, errors

router = APIRouter(
    prefix="/v1",
    tags=["online"],
    dependencies=[ReadAccess],
    responses=errors(400, 401, 404, 422, 503),
)


@router.post("/online", responses={200: {"model": OnlineResponse}})
async def online(
    body: OnlineRequest, settings: SettingsDep, lookup: LookupDep, metrics: MetricsDep
) -> Response:
    """Values, a status per value (present, expired, fallback, missing) and each view's step.

    The body is serialized directly (not through the response model) to keep the hot path
    short; its shape is `OnlineResponse`.
    """
    if len(body.entities) > settings.api_max_entities:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"entities: at most {settings.api_max_entities} per request, got {len(body.entities)}",
        )
    try:
        check_rows(body.entities, "entities", nested=True)
        result = await lookup.lookup(body.features or [], body.feature_service, body.entities)
    except ValueError as e:  # a bad reference or entity key; the message names the field
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e)) from None
    except OfflineUnavailable as e:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(e)) from None
    metrics.observe_lookup(result)
    return Response(dumps(result.body, separators=(",", ":")), media_type="application/json")
