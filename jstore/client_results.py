"""What `FeatureStoreClient` hands back, shaped like Feast's: `OnlineResponse` and `TrainingSet`.

An online answer is small and kept as the API sent it. A training set can be large: the client
streams the API's Parquet answer into a temporary file as it arrives, so its bytes are never
held in memory, and each `to_*` reads that file (deleted on `close()` or garbage collection).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jstore.closable import Closable
from jstore.model import FeatureRef

if TYPE_CHECKING:
    import polars


class OnlineResponse:
    """The answer of `get_online_features`: `to_dict()` / `to_df()` as Feast's, `body` as sent.

    Feature names are the bare feature names (`count_1h`), or with `full_feature_names`
    `<view>__<feature>`, the training set's column names.
    """

    def __init__(self, body: dict[str, Any], full_feature_names: bool = False):
        self.body = body
        """The `/v1/online` answer: `features`; per entity `values`, `statuses`, `feature_ts`."""
        self.names = feature_names(body["features"], full_feature_names)
        """The name of each requested feature reference, in order."""

    def to_dict(self, include_statuses: bool = False) -> dict[str, list[Any]]:
        """Join key → values, then feature name → values, one value per entity row, in order.

        `include_statuses` adds `<name>__status` after each feature: present, expired,
        fallback or missing (docs/serving.md)."""
        rows = self.body["rows"]
        keys = list(rows[0]["entity"]) if rows else []
        result = {key: [row["entity"].get(key) for row in rows] for key in keys}
        for ref, name in zip(self.body["features"], self.names, strict=True):
            result[name] = [row["values"][ref] for row in rows]
            if include_statuses:
                result[f"{name}__status"] = [row["statuses"][ref] for row in rows]
        return result

    def to_df(self, include_statuses: bool = False) -> pd.DataFrame:
        return pd.DataFrame(self.to_dict(include_statuses))

    def __getitem__(self, key: str) -> Any:
        """The raw answer's fields: code written when `get_online_features` returned `body`."""
        warnings.warn(
            "get_online_features returns an OnlineResponse: use .to_dict(), .to_df() or .body",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.body[key]


def feature_names(refs: list[str], full: bool) -> list[str]:
    """Bare feature names, or `<view>__<feature>`; bare names must not collide."""
    parsed = [FeatureRef.parse(ref) for ref in refs]
    if full:
        return [f"{ref.view}__{ref.feature}" for ref in parsed]
    names = [ref.feature for ref in parsed]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"features: {', '.join(repeated)} named in more than one view; "
            "pass full_feature_names=True for <view>__<feature> names"
        )
    return names


UNCOVERED_HEADER = "JStore-Uncovered-Rows"
"""The `/v1/training-sets` response header counting the entity rows past coverage per view."""


def uncovered_rows(headers: Mapping[str, str]) -> dict[str, int]:
    """The per-view counts of entity rows past coverage that a training-set response carries."""
    return json.loads(headers.get(UNCOVERED_HEADER) or "{}")


class TrainingSet(Closable):
    """The answer of `get_historical_features`, already fetched into a temporary file: what
    Feast calls a RetrievalJob. Read it as often as needed, in any of the three forms."""

    def __init__(self, parquet_file: IO[bytes], uncovered_rows: dict[str, int] | None = None):
        self._file = parquet_file
        self.uncovered_rows = uncovered_rows or {}
        """Per view table, the entity rows past its published coverage (their features of that
        view are null)."""

    def to_arrow(self) -> pa.Table:
        self._file.seek(0)
        return pq.read_table(self._file)

    def to_df(self) -> pd.DataFrame:
        """A pandas DataFrame: the entity rows in order, their columns, then one
        `<view>__<feature>` column per feature."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> polars.DataFrame:
        """A polars DataFrame (polars is not a dependency of JStore: install it to use this)."""
        try:
            import polars
        except ImportError:
            raise ImportError(
                "to_polars: the polars package is not installed (pip install polars)"
            ) from None
        return polars.from_arrow(self.to_arrow())

    def close(self) -> None:
        """Delete the temporary file now rather than when this object is collected."""
        self._file.close()
