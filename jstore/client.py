"""`FeatureStoreClient` and `AsyncFeatureStoreClient`: the JStore REST API from Python (httpx),
shaped like Feast's `FeatureStore` (docs/client.md).

    client = FeatureStoreClient()  # JSTORE_API_URL and JSTORE_API_KEY from the environment
    client.get_online_features(features=[...], entity_rows=[{"user_id": "u1"}]).to_df()
    client.get_historical_features(entity_df, features=[...]).to_df()  # .to_arrow(), .to_polars()

Both clients build the same requests (the functions below); only the transport differs.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Callable
from typing import IO, Any, Generic, TypeVar

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from jstore.client_results import OnlineResponse, TrainingSet, uncovered_rows
from jstore.closable import Closable
from jstore.repo import KINDS

__all__ = [
    "AsyncFeatureStoreClient",
    "FeatureStoreClient",
    "FeatureStoreError",
    "OnlineResponse",
    "TrainingSet",
]

DEFAULT_URL = "http://127.0.0.1:8765"
PATHS = {
    "entity": "entities",
    "source": "sources",
    "feature view": "feature-views",
    "feature service": "feature-services",
}
EntityRows = pd.DataFrame | pa.Table | list[dict[str, Any]]
"""Entity rows: pandas, Arrow, a list of dicts, or polars (anything with `to_arrow()`)."""


class FeatureStoreError(Exception):
    """The API refused a request; `status` is the HTTP status, `detail` what was wrong."""

    def __init__(self, status: int, detail: Any):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


HTTP = TypeVar("HTTP", httpx.Client, httpx.AsyncClient)


class _Base(Generic[HTTP]):
    """What both clients hold: the API's URL, the key's header and the httpx client they send
    through, sync or async."""

    new_http: Callable[..., HTTP]

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        http: HTTP | None = None,
    ):
        """`url` and `api_key` default to `JSTORE_API_URL` (else http://127.0.0.1:8765) and
        `JSTORE_API_KEY`. `http`: an httpx client to send through (e.g. FastAPI's TestClient)."""
        self.url = (url or os.environ.get("JSTORE_API_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("JSTORE_API_KEY")
        self.headers = {"X-API-Key": key} if key else {}
        self.http: HTTP = http or self.new_http(timeout=timeout)


class FeatureStoreClient(Closable, _Base[httpx.Client]):
    new_http = httpx.Client

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, self.url + path, headers=self.headers, **kwargs)
        _raise_for_status(response)
        return response

    def get_online_features(
        self,
        features: list[str] | None = None,
        entity_rows: list[dict[str, Any]] | None = None,
        *,
        feature_service: str | None = None,
        full_feature_names: bool = False,
        entities: list[dict[str, Any]] | None = None,
    ) -> OnlineResponse:
        """The latest values of `features` (or a `feature_service`'s) for each entity row, from
        Redis; `.to_dict()`, `.to_df()`. `entities` is the former name of `entity_rows`."""
        body = _online_body(features, entity_rows, feature_service, entities)
        return OnlineResponse(
            self._call("POST", "/v1/online", json=body).json(), full_feature_names
        )

    def get_historical_features(
        self,
        entity_df: EntityRows,
        features: list[str] | None = None,
        *,
        feature_service: str | None = None,
    ) -> TrainingSet:
        """The point-in-time join of `entity_df` (join keys, `event_timestamp`, any other
        columns), streamed into a temporary file; `.to_df()`, `.to_arrow()`, `.to_polars()`."""
        request = _training_request(entity_df, features, feature_service)
        sink = tempfile.TemporaryFile()  # noqa: SIM115 (the TrainingSet returned closes it)
        try:
            with self.http.stream(
                "POST", self.url + "/v1/training-sets", headers=self.headers, **request
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for_status(response)
                for chunk in response.iter_bytes():
                    sink.write(chunk)
        except BaseException:
            sink.close()
            raise
        return TrainingSet(sink, uncovered_rows(response.headers))

    def get_training_set(
        self,
        entity_rows: EntityRows,
        features: list[str] | None = None,
        feature_service: str | None = None,
    ) -> pd.DataFrame:
        """`get_historical_features(entity_rows, ...).to_df()`, by its former name."""
        with self.get_historical_features(
            entity_rows, features, feature_service=feature_service
        ) as training_set:
            return training_set.to_df()

    def list_definitions(self, kind: str) -> list[dict[str, Any]]:
        """`kind`: entity, source, feature view or feature service."""
        return self._call("GET", f"/v1/{_path(kind)}").json()

    def get_definition(self, kind: str, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/{_path(kind)}/{name}").json()

    def register(self, definition: BaseModel) -> dict[str, Any]:
        """Register an Entity, source, feature view or FeatureService; needs a write key."""
        path, body = _registration(definition)
        return self._call("POST", path, json=body).json()

    def history(
        self, view: str, key: dict[str, Any], start: str | None = None, end: str | None = None
    ) -> list[dict[str, Any]]:
        """One entity's stored rows of `view` with start <= feature_ts < end."""
        params = _history_params(key, start, end)
        return self._call("GET", f"/v1/feature-views/{view}/history", params=params).json()["rows"]


class AsyncFeatureStoreClient(_Base[httpx.AsyncClient]):
    """`FeatureStoreClient` for asyncio code: the same methods, awaited."""

    new_http = httpx.AsyncClient

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncFeatureStoreClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, self.url + path, headers=self.headers, **kwargs)
        _raise_for_status(response)
        return response

    async def get_online_features(
        self,
        features: list[str] | None = None,
        entity_rows: list[dict[str, Any]] | None = None,
        *,
        feature_service: str | None = None,
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        body = _online_body(features, entity_rows, feature_service, None)
        response = await self._call("POST", "/v1/online", json=body)
        return OnlineResponse(response.json(), full_feature_names)

    async def get_historical_features(
        self,
        entity_df: EntityRows,
        features: list[str] | None = None,
        *,
        feature_service: str | None = None,
    ) -> TrainingSet:
        request = _training_request(entity_df, features, feature_service)
        sink = tempfile.TemporaryFile()  # noqa: SIM115 (the TrainingSet returned closes it)
        try:
            async with self.http.stream(
                "POST", self.url + "/v1/training-sets", headers=self.headers, **request
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for_status(response)
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
        except BaseException:
            sink.close()
            raise
        return TrainingSet(sink, uncovered_rows(response.headers))

    async def list_definitions(self, kind: str) -> list[dict[str, Any]]:
        return (await self._call("GET", f"/v1/{_path(kind)}")).json()

    async def get_definition(self, kind: str, name: str) -> dict[str, Any]:
        return (await self._call("GET", f"/v1/{_path(kind)}/{name}")).json()

    async def register(self, definition: BaseModel) -> dict[str, Any]:
        path, body = _registration(definition)
        return (await self._call("POST", path, json=body)).json()

    async def history(
        self, view: str, key: dict[str, Any], start: str | None = None, end: str | None = None
    ) -> list[dict[str, Any]]:
        params = _history_params(key, start, end)
        response = await self._call("GET", f"/v1/feature-views/{view}/history", params=params)
        return response.json()["rows"]


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text
    raise FeatureStoreError(response.status_code, detail)


def _online_body(
    features: list[str] | None,
    entity_rows: list[dict[str, Any]] | None,
    feature_service: str | None,
    entities: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    if features and isinstance(features[0], dict):  # the former order: (entities, features)
        warnings.warn(
            "get_online_features(entities, ...) is now get_online_features(features, "
            "entity_rows): pass entity_rows=",
            DeprecationWarning,
            stacklevel=3,
        )
        features, entities = None, features
    if entities is not None:
        entity_rows = entities
    if entity_rows is None:
        raise ValueError("entity_rows: give the entity rows to look up, e.g. [{'user_id': 'u1'}]")
    return _selection(features, feature_service) | {"entities": entity_rows}


def _training_request(
    entity_df: EntityRows, features: list[str] | None, feature_service: str | None
) -> dict[str, Any]:
    """The keyword arguments of the `/v1/training-sets` request: a list of dicts as JSON, any
    table as an uploaded Parquet file (no row limit but the API's upload size)."""
    selection = _selection(features, feature_service)
    params = {"format": "parquet"}
    if isinstance(entity_df, list):
        return {"params": params, "json": selection | {"entity_rows": entity_df}}
    form = {"features": ",".join(features)} if features else {"feature_service": feature_service}
    return {"params": params, "files": {"entities": _parquet(entity_df)}, "data": form}


def _parquet(entity_df: EntityRows) -> tuple[str, IO[bytes]]:
    if isinstance(entity_df, pd.DataFrame):
        table = pa.Table.from_pandas(entity_df, preserve_index=False)
    elif isinstance(entity_df, pa.Table):
        table = entity_df
    elif hasattr(entity_df, "to_arrow"):
        table = entity_df.to_arrow()
    else:
        raise TypeError(
            f"entity_df: a pandas, Arrow or polars table or a list of dicts, "
            f"not {type(entity_df).__name__}"
        )
    upload = io.BytesIO()
    pq.write_table(table, upload)
    upload.seek(0)
    return "entities.parquet", upload


def _selection(features: list[str] | None, feature_service: str | None) -> dict[str, Any]:
    if (features is None) == (feature_service is None):
        raise ValueError("features: give exactly one of features and feature_service")
    return {"features": features} if features is not None else {"feature_service": feature_service}


def _registration(definition: BaseModel) -> tuple[str, dict[str, Any]]:
    kind = KINDS.get(type(definition))
    if kind is None:
        raise TypeError(f"{type(definition).__name__} is not a JStore definition")
    return f"/v1/{PATHS[kind]}", definition.model_dump(mode="json", by_alias=True)


def _history_params(key: dict[str, Any], start: str | None, end: str | None) -> dict[str, Any]:
    return {**key, **{k: v for k, v in (("start", start), ("end", end)) if v}}


def _path(kind: str) -> str:
    if kind not in PATHS:
        raise ValueError(f"kind: choose one of {', '.join(PATHS)}")
    return PATHS[kind]
