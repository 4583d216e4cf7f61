"""`FeatureStoreClient`: the JStore REST API from Python (httpx).

client = FeatureStoreClient("http://127.0.0.1:8765", api_key="…")
rows = client.get_online_features(features=["user_purchases:count_1h"],
                                  entities=[{"user_id": "u1"}])
training = client.get_training_set(entity_df, feature_service="fraud_v1")  # a DataFrame
"""

from __future__ import annotations

import io
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from jstore.repo import KINDS

PATHS = {
    "entity": "entities",
    "source": "sources",
    "feature view": "feature-views",
    "feature service": "feature-services",
}


class FeatureStoreError(Exception):
    """The API refused a request; `status` is the HTTP status, `detail` what was wrong."""

    def __init__(self, status: int, detail: Any):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class FeatureStoreClient:
    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ):
        """`http`: an httpx client to send through (e.g. FastAPI's TestClient in tests)."""
        self.url = url.rstrip("/")
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self.http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FeatureStoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.request(method, self.url + path, headers=self.headers, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise FeatureStoreError(response.status_code, detail)
        return response

    # Online ------------------------------------------------------------------------------------

    def get_online_features(
        self,
        entities: list[dict[str, Any]],
        features: list[str] | None = None,
        feature_service: str | None = None,
    ) -> dict[str, Any]:
        """The `/v1/online` answer: `features` and per entity `values`, `statuses`, `feature_ts`."""
        body = _selection(features, feature_service) | {"entities": entities}
        return self._call("POST", "/v1/online", json=body).json()

    # Training sets -----------------------------------------------------------------------------

    def get_training_set(
        self,
        entity_rows: pd.DataFrame | list[dict[str, Any]],
        features: list[str] | None = None,
        feature_service: str | None = None,
    ) -> pd.DataFrame:
        """The point-in-time join of `entity_rows` (join keys, `event_timestamp`, extra columns).

        A DataFrame is uploaded as Parquet (no row limit but the upload size); a list of dicts
        goes as JSON.
        """
        _selection(features, feature_service)
        if isinstance(entity_rows, pd.DataFrame):
            upload = io.BytesIO()
            pq.write_table(pa.Table.from_pandas(entity_rows, preserve_index=False), upload)
            form = {"features": ",".join(features)} if features else {}
            if feature_service:
                form["feature_service"] = feature_service
            response = self._call(
                "POST",
                "/v1/training-sets",
                params={"format": "parquet"},
                files={"entities": ("entities.parquet", upload.getvalue())},
                data=form,
            )
        else:
            body = _selection(features, feature_service) | {"entity_rows": entity_rows}
            response = self._call(
                "POST", "/v1/training-sets", params={"format": "parquet"}, json=body
            )
        return pq.read_table(io.BytesIO(response.content)).to_pandas()

    # Registry ----------------------------------------------------------------------------------

    def list_definitions(self, kind: str) -> list[dict[str, Any]]:
        """`kind`: entity, source, feature view or feature service."""
        return self._call("GET", f"/v1/{_path(kind)}").json()

    def get_definition(self, kind: str, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/{_path(kind)}/{name}").json()

    def register(self, definition: BaseModel) -> dict[str, Any]:
        """Register an Entity, source, feature view or FeatureService; needs a write key."""
        kind = KINDS.get(type(definition))
        if kind is None:
            raise TypeError(f"{type(definition).__name__} is not a JStore definition")
        body = definition.model_dump(mode="json", by_alias=True)
        return self._call("POST", f"/v1/{PATHS[kind]}", json=body).json()

    def history(
        self, view: str, key: dict[str, Any], start: str | None = None, end: str | None = None
    ) -> list[dict[str, Any]]:
        """One entity's stored rows of `view` with start <= feature_ts < end."""
        params = {**key, **{k: v for k, v in (("start", start), ("end", end)) if v}}
        return self._call("GET", f"/v1/feature-views/{view}/history", params=params).json()["rows"]


def _path(kind: str) -> str:
    if kind not in PATHS:
        raise ValueError(f"kind: choose one of {', '.join(PATHS)}")
    return PATHS[kind]


def _selection(features: list[str] | None, feature_service: str | None) -> dict[str, Any]:
    if (features is None) == (feature_service is None):
        raise ValueError("features: give exactly one of features and feature_service")
    return {"features": features} if features else {"feature_service": feature_service}
