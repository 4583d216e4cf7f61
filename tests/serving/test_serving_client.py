"""FeatureStoreClient against the app: online features, training sets, the registry, errors."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from jstore.client import FeatureStoreClient, FeatureStoreError
from jstore.model import Entity
from tests.serving.conftest import NOW_STEP, READ_KEY, WRITE_KEY


@pytest.fixture
def reader(client) -> FeatureStoreClient:
    return FeatureStoreClient("http://testserver", READ_KEY, http=client)


def test_online_features(reader, fresh_clicks):
    body = reader.get_online_features([{"user_id": "u1"}], feature_service="clicks_v1")

    assert body["rows"][0]["values"] == {
        "user_clicks:count_1h": 2,
        "user_clicks:amount_max_1h": 5.0,
    }


def test_training_set_as_a_dataframe(reader, fresh_clicks):
    just_before = NOW_STEP - timedelta(minutes=1)  # inside the coverage, which ends at NOW_STEP
    rows = pd.DataFrame(
        {"user_id": ["u2", "u1"], "event_timestamp": [just_before] * 2, "label": [0, 1]}
    )

    frame = reader.get_training_set(rows, features=["user_clicks:count_1h"])

    assert list(frame.columns) == ["user_id", "event_timestamp", "label", "user_clicks__count_1h"]
    assert frame["user_clicks__count_1h"].tolist() == [1, 2]
    listed = reader.get_training_set(
        [{"user_id": "u1", "event_timestamp": just_before.isoformat()}], feature_service="clicks_v1"
    )
    assert listed["user_clicks__amount_max_1h"].tolist() == [5.0]


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
