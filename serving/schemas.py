"""Request and response bodies of the REST API (separate from the stored documents; a
definition, and a view's `FeatureSpec`, travels as its model's JSON)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jstore.model import FeatureSpec
from serving.json_values import LONE_SURROGATE, is_unicode

Status = Literal["present", "expired", "fallback", "missing"]


class ErrorOut(BaseModel):
    detail: str
    """`<field>: <what is wrong>`, e.g. `entities.1.user_id: missing join key`."""


ERROR_MEANINGS = {
    400: "A body that is not JSON text (or not UTF-8)",
    401: "No or an unknown `X-API-Key`",
    403: "The key's scope does not allow this",
    404: "An unknown name (view, feature, service, entity, source, page)",
    413: "An upload over the size limit",
    422: "Invalid input; `detail` names the field",
    503: "Redis is down and the offline store cannot answer either",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of the error answers `codes`: all `{"detail": "…"}`."""
    return {code: {"model": ErrorOut, "description": ERROR_MEANINGS[code]} for code in codes}


class FeatureSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    features: list[str] | None = Field(None, min_length=1)
    """Feature references `view:feature` or `view@vN:feature`."""
    feature_service: str | None = None

    @field_validator("features", "feature_service")
    @classmethod
    def _unicode(cls, value: list[str] | str | None) -> list[str] | str | None:
        for text in [value] if isinstance(value, str) else value or []:
            if not is_unicode(text):
                raise ValueError(LONE_SURROGATE)
        return value

    @model_validator(mode="after")
    def _one_of(self) -> FeatureSelection:
        if (self.features is None) == (self.feature_service is None):
            raise ValueError("features: give exactly one of features and feature_service")
        return self


class OnlineRequest(FeatureSelection):
    entities: list[dict[str, Any]] = Field(min_length=1)
    """Join key values of each entity, e.g. `{"user_id": "u1"}`."""


class OnlineRow(BaseModel):
    entity: dict[str, Any]
    values: dict[str, Any]
    statuses: dict[str, Status]
    feature_ts: dict[str, str | None]
    """Per view: the step of the row answered (null when the entity has none)."""


class OnlineResponse(BaseModel):
    features: list[str]
    rows: list[OnlineRow]


class TrainingSetRequest(FeatureSelection):
    entity_rows: list[dict[str, Any]] = Field(min_length=1)
    """Join keys, `event_timestamp` and any extra columns (kept as they are)."""


class RegisterResponse(BaseModel):
    kind: str
    name: str
    action: Literal["create", "new version", "update", "unchanged"]
    version: int | None = None


class FeatureViewOut(BaseModel):
    name: str
    version: int
    versions: list[int]
    definition: dict[str, Any]
    """The view as registered (`POST /v1/feature-views` takes this shape)."""
    join_keys: list[str]
    features: list[FeatureSpec]
    """Each feature as stored and served: the window as text (`1h`), like the definition's."""
    coverage: list[tuple[str, str]]
    """Published intervals [start, end) of this version."""


class HistoryResponse(BaseModel):
    view: str
    version: int
    entity: dict[str, Any]
    rows: list[dict[str, Any]]


class ServerCheck(BaseModel):
    ok: bool
    error: str | None = None


class ReadyResponse(BaseModel):
    ready: bool
    servers: dict[str, ServerCheck]
