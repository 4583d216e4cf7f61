"""`POST /v1/training-sets`: a point-in-time correct training set, streamed.

Entity rows come as JSON (`entity_rows`) or as an uploaded Parquet/CSV file (multipart: file
`entities` + field `features` with comma-separated references, or field `feature_service`).
The entity rows past a view's published coverage (their features of that view are null) are
counted per view table in the `JStore-Uncovered-Rows` header, a JSON object, whatever the
format: the join is done before the body streams, and the body stays the rows alone.
"""

from __future__ import annotations

import io
import json
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from anyio import to_thread
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from jstore.client_results import UNCOVERED_HEADER
from jstore.config import Settings
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline import JoinResult
from jstore.registry import Registry
from serving.deps import ReadAccess, RegistryDep, SettingsDep
from serving.entity_rows import entity_rows_table
from serving.formats import MEDIA_TYPES, Format, check_writable, stream_table
from serving.schemas import TrainingSetRequest, errors

router = APIRouter(
    prefix="/v1",
    tags=["training sets"],
    dependencies=[ReadAccess],
    responses=errors(400, 401, 404, 413, 422),
)
UNPROCESSABLE = status.HTTP_422_UNPROCESSABLE_CONTENT


class EntityUpload(NamedTuple):
    """An uploaded entity file, read once the features (and so the key types) are known."""

    filename: str
    data: bytes


@router.post(
    "/training-sets",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": TrainingSetRequest.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "entities": {"type": "string", "format": "binary"},
                            "features": {"type": "string"},
                            "feature_service": {"type": "string"},
                        },
                        "required": ["entities"],
                    }
                },
            },
            "required": True,
        }
    },
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The training set, streamed in the format asked",
            "headers": {
                UNCOVERED_HEADER: {
                    "description": "Per view table, the entity rows past its published "
                    "coverage (their features are null), as a JSON object",
                    "schema": {"type": "string"},
                }
            },
            "content": {
                MEDIA_TYPES["json"]: {"schema": {"type": "array", "items": {"type": "object"}}},
                MEDIA_TYPES["csv"]: {"schema": {"type": "string"}},
                MEDIA_TYPES["parquet"]: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def training_set(
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    format: Format = Query("parquet", description="parquet, csv or json"),
) -> StreamingResponse:
    """The entity rows, their columns unchanged, plus one `<view>__<feature>` column a feature."""
    entities: list[dict[str, Any]] | EntityUpload
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        selection, entities = await _from_upload(request, settings)
    else:
        selection = await _from_json(request, settings)
        entities = selection.entity_rows
    try:
        joined = await to_thread.run_sync(_join, settings, registry, selection, entities)
        check_writable(joined.table.schema, format)
    except ValueError as e:
        raise HTTPException(UNPROCESSABLE, str(e)) from None
    return StreamingResponse(
        stream_table(joined.table, format),
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="training_set.{format}"',
            UNCOVERED_HEADER: json.dumps(joined.uncovered_rows),
        },
    )


async def _from_json(request: Request, settings: Settings) -> TrainingSetRequest:
    try:
        body = TrainingSetRequest.model_validate_json(await request.body())
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise HTTPException(UNPROCESSABLE, f"{where}: {err['msg']}") from None
    if len(body.entity_rows) > settings.api_max_entities:
        raise HTTPException(
            UNPROCESSABLE,
            f"entity_rows: at most {settings.api_max_entities} as JSON, "
            "upload a Parquet or CSV file for more",
        )
    return body


async def _from_upload(
    request: Request, settings: Settings
) -> tuple[TrainingSetRequest, EntityUpload]:
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.api_max_upload_bytes:
        raise _too_large(settings)
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("entities")
    if not isinstance(upload, UploadFile):
        raise HTTPException(UNPROCESSABLE, "entities: upload the entity rows as a file field")
    if (upload.size or 0) > settings.api_max_upload_bytes:
        raise _too_large(settings)
    features = form.get("features")
    service = form.get("feature_service")
    try:
        selection = TrainingSetRequest(
            features=[f.strip() for f in str(features).split(",") if f.strip()]
            if features
            else None,
            feature_service=str(service) if service else None,
            entity_rows=[{}],
        )
    except ValidationError as e:
        message = e.errors()[0]["msg"].removeprefix("Value error, ")
        raise HTTPException(UNPROCESSABLE, message) from None
    filename = upload.filename or ""
    data = await upload.read()
    if not (data[:4] == b"PAR1" or filename.endswith((".parquet", ".csv")) or not filename):
        raise HTTPException(UNPROCESSABLE, f"entities: {filename!r} is not a .parquet or .csv file")
    return selection, EntityUpload(filename, data)


def _read_entities(
    upload: EntityUpload, features: list[tuple[ResolvedView, FeatureSpec]]
) -> pa.Table:
    """The uploaded rows; a CSV's join keys read with their view's type, as `jstore export`."""
    from jstore.export import check_key_text, read_entity_csv

    try:
        if upload.data[:4] == b"PAR1" or upload.filename.endswith(".parquet"):
            table = pq.read_table(io.BytesIO(upload.data))
        else:
            table = read_entity_csv(io.BytesIO(upload.data), features)
    except (pa.ArrowInvalid, OSError) as e:
        raise HTTPException(UNPROCESSABLE, f"entities: not a readable file ({e})") from None
    check_key_text(table, features)
    return table


def _too_large(settings: Settings) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"entities: larger than the limit of {settings.api_max_upload_bytes} bytes",
    )


def _join(
    settings: Settings,
    registry: Registry,
    selection: TrainingSetRequest,
    entities: list[dict[str, Any]] | EntityUpload,
) -> JoinResult:
    from jstore.export import join_features

    features = registry.resolve_refs(selection.features or [], selection.feature_service)
    if isinstance(entities, EntityUpload):
        table = _read_entities(entities, features)
    else:
        table = entity_rows_table(entities, features)
    return join_features(settings, registry, table, features)
