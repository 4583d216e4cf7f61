"""FeatureStoreClient and AsyncFeatureStoreClient against the app: online features as a dict or
a DataFrame, training sets as pandas, Arrow or polars, the registry, errors, configuration."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from jstore.client import AsyncFeatureStoreClient, FeatureStoreClient, FeatureStoreError
from jstore.model import Entity
from serving.app import create_app
from tests.serving.conftest import READ_KEY, WRITE_KEY
from tests.serving.live_api import live_api


@pytest.fixture
def just_before(now_step: datetime) -> datetime:
    """Inside the published coverage, which ends at `now_step`: u1 has 2 clicks, u2 has 1."""
    return now_step - timedelta(minutes=1)


@pytest.fixture
def reader(client) -> FeatureStoreClient:
    return FeatureStoreClient("http://testserver", READ_KEY, http=client)


def test_online_features_as_a_dict_and_a_dataframe(reader, fresh_clicks):
    online = reader.get_online_features(
        features=["user_clicks:count_1h", "user_clicks:amount_max_1h"],
        entity_rows=[{"user_id": "u1"}, {"user_id": "u2"}, {"user_id": "u9"}],
    )

    assert online.to_dict() == {
        "user_id": ["u1", "u2", "u9"],
        "count_1h": [2, 1, 0],
        "amount_max_1h": [5.0, 3.0, None],
    }
    frame = online.to_df(include_statuses=True)
    assert list(frame.columns) == [
        "user_id",
        "count_1h",
        "count_1h__status",
        "amount_max_1h",
        "amount_max_1h__status",
    ]
    assert frame["count_1h"].tolist() == [2, 1, 0]
    assert frame["amount_max_1h"].isna().tolist() == [False, False, True]
    assert frame["count_1h__status"].tolist() == ["present"] * 3
    assert online.body["rows"][0]["values"] == {
        "user_clicks:count_1h": 2,
        "user_clicks:amount_max_1h": 5.0,
    }


def test_full_feature_names_are_the_training_set_columns(reader, fresh_clicks):
    online = reader.get_online_features(
        feature_service="clicks_v1", entity_rows=[{"user_id": "u1"}], full_feature_names=True
    )

    assert online.to_dict() == {
        "user_id": ["u1"],
        "user_clicks__count_1h": [2],
        "user_clicks__amount_max_1h": [5.0],
    }


def test_the_same_bare_name_twice_asks_for_full_names(reader, fresh_clicks):
    with pytest.raises(ValueError, match="features: count_1h named in more than one view"):
        reader.get_online_features(
            features=["user_clicks:count_1h", "user_clicks@v1:count_1h"],
            entity_rows=[{"user_id": "u1"}],
        )


def test_the_former_online_call_still_works_with_a_warning(reader, fresh_clicks):
    with pytest.warns(DeprecationWarning, match="entity_rows"):
        body = reader.get_online_features([{"user_id": "u1"}], feature_service="clicks_v1")
    with pytest.warns(DeprecationWarning, match="to_dict"):
        values = body["rows"][0]["values"]

    assert values == {"user_clicks:count_1h": 2, "user_clicks:amount_max_1h": 5.0}


def test_historical_features_as_pandas_and_arrow(now_step, just_before, reader, fresh_clicks):
    rows = pd.DataFrame(
        {
            "user_id": ["u2", "u1", "u9", "u1"],
            "event_timestamp": [just_before] * 3 + [now_step],
            "label": [0, 1, 0, 1],
        }
    )

    with reader.get_historical_features(rows, features=["user_clicks:count_1h"]) as training:
        frame = training.to_df()
        table = training.to_arrow()
        uncovered = training.uncovered_rows

    assert frame["user_id"].tolist() == ["u2", "u1", "u9", "u1"]
    assert frame["event_timestamp"].tolist() == [pd.Timestamp(just_before)] * 3 + [
        pd.Timestamp(now_step)
    ]
    assert frame["label"].tolist() == [0, 1, 0, 1]
    assert frame["user_clicks__count_1h"].tolist()[:3] == [1, 2, 0]
    assert pd.isna(frame["user_clicks__count_1h"].tolist()[3])  # past the coverage: null
    assert table.column_names == ["user_id", "event_timestamp", "label", "user_clicks__count_1h"]
    assert table.column("user_clicks__count_1h").to_pylist() == [1, 2, 0, None]
    assert uncovered == {"user_clicks__v1": 1}


def test_historical_features_of_an_arrow_table_and_of_a_list(just_before, reader, fresh_clicks):
    table = pa.table(
        {"user_id": ["u1"], "event_timestamp": pa.array([just_before], pa.timestamp("us", "UTC"))}
    )
    listed = [{"user_id": "u2", "event_timestamp": just_before.isoformat()}]

    from_table = reader.get_historical_features(table, feature_service="clicks_v1").to_arrow()
    from_list = reader.get_historical_features(listed, feature_service="clicks_v1").to_df()

    assert from_table.column("user_clicks__amount_max_1h").to_pylist() == [5.0]
    assert from_list["user_clicks__amount_max_1h"].tolist() == [3.0]
    assert reader.get_training_set(listed, feature_service="clicks_v1").equals(from_list)


def test_to_polars_without_polars_says_what_to_install(
    just_before, reader, fresh_clicks, monkeypatch
):
    monkeypatch.setitem(sys.modules, "polars", None)  # as if polars were not installed
    rows = [{"user_id": "u1", "event_timestamp": just_before.isoformat()}]
    training = reader.get_historical_features(rows, features=["user_clicks:count_1h"])

    with pytest.raises(ImportError, match=r"to_polars: the polars package is not installed"):
        training.to_polars()


def test_a_refused_training_set_raises_with_the_apis_detail(just_before, reader, fresh_clicks):
    rows = pd.DataFrame({"user_id": ["u1"], "event_timestamp": [just_before]})

    with pytest.raises(FeatureStoreError) as refused:
        reader.get_historical_features(rows, features=["user_clicks:count_9h"])

    assert (refused.value.status, refused.value.detail) == (
        404,
        "features.0: feature view 'user_clicks' v1 has no feature 'count_9h'",
    )


def test_url_and_key_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("JSTORE_API_URL", "http://features.example:9000/")
    monkeypatch.setenv("JSTORE_API_KEY", "k1")
    from_env = FeatureStoreClient()
    named = FeatureStoreClient("http://other:1", api_key="k2")
    monkeypatch.delenv("JSTORE_API_URL")
    monkeypatch.delenv("JSTORE_API_KEY")
    default = AsyncFeatureStoreClient()

    assert (from_env.url, from_env.headers) == ("http://features.example:9000", {"X-API-Key": "k1"})
    assert (named.url, named.headers) == ("http://other:1", {"X-API-Key": "k2"})
    assert (default.url, default.headers) == ("http://127.0.0.1:8765", {})


def test_the_async_client_over_a_real_server(just_before, api_settings, fresh_clicks):
    rows = pd.DataFrame({"user_id": ["u1", "u2"], "event_timestamp": [just_before] * 2})

    async def calls(url: str):
        async with AsyncFeatureStoreClient(url, READ_KEY) as api:
            online = await api.get_online_features(
                features=["user_clicks:count_1h"], entity_rows=[{"user_id": "u2"}]
            )
            training = await api.get_historical_features(rows, feature_service="clicks_v1")
            views = await api.list_definitions("feature view")
            with pytest.raises(FeatureStoreError, match="404: unknown entity 'mall'"):
                await api.get_definition("entity", "mall")
            return online.to_dict(), training.to_df(), [v["name"] for v in views]

    with live_api(create_app(api_settings)) as url:
        online, training, views = asyncio.run(calls(url))

    assert online == {"user_id": ["u2"], "count_1h": [1]}
    assert training["user_clicks__count_1h"].tolist() == [2, 1]
    assert views == ["user_clicks"]


def test_registry_calls_and_refusals(client, reader, registry):
    with pytest.raises(FeatureStoreError) as refused:
        reader.register(Entity(name="shop", join_keys=["shop_id"]))
    assert (refused.value.status, refused.value.detail) == (
        403,
        "X-API-Key: a read key cannot write",
    )

    writer = FeatureStoreClient("http://testserver", WRITE_KEY, http=client)
    assert writer.register(Entity(name="shop", join_keys=["shop_id"]))["action"] == "create"
    assert [e["name"] for e in reader.list_definitions("entity")] == ["shop"]
    assert reader.get_definition("entity", "shop")["join_keys"] == ["shop_id"]
    with pytest.raises(FeatureStoreError, match="404: unknown entity 'mall'"):
        reader.get_definition("entity", "mall")
