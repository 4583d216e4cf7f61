"""The registry over REST: definitions in the model's JSON shape, listed, read and registered."""

from __future__ import annotations

from jstore.durations import iso
from tests.online.online_helpers import (
    HOUR,
    T0,
    apply_clicks,
    clicks,
    publish_rows,
    row,
    user_clicks,
)
from tests.serving.conftest import READ, WRITE


def test_entities_sources_and_services_round_trip_as_model_json(client, registry):
    apply_clicks(registry)

    assert client.get("/v1/entities", headers=READ).json() == [
        {"kind": "entity", "name": "user", "join_keys": ["user_id"], "description": ""}
    ]
    assert client.get("/v1/sources/clicks", headers=READ).json() == clicks.model_dump(
        mode="json", by_alias=True
    )
    assert client.get("/v1/feature-services", headers=READ).json()[0]["features"] == [
        "user_clicks:count_1h",
        "user_clicks:amount_max_1h",
    ]
    missing = client.get("/v1/entities/nobody", headers=READ)
    assert (missing.status_code, missing.json()) == (404, {"detail": "unknown entity 'nobody'"})


def test_a_feature_view_with_its_versions_features_and_coverage(client, registry, api_settings):
    view = apply_clicks(registry)
    publish_rows(api_settings, registry, view, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])

    body = client.get("/v1/feature-views/user_clicks", headers=READ).json()

    assert body["name"] == "user_clicks"
    assert (body["version"], body["versions"], body["join_keys"]) == (1, [1], ["user_id"])
    assert body["definition"] == user_clicks.model_dump(mode="json", by_alias=True)
    assert body["features"][0] == {
        "name": "count_1h",
        "dtype": "int64",
        "function": "count",
        "column": None,
        "window": "1h",
    }
    assert body["coverage"] == [["2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"]]
    listed = client.get("/v1/feature-views?entity=user", headers=READ).json()
    assert [v["name"] for v in listed] == ["user_clicks"]


def test_registering_a_view_with_a_new_aggregation_makes_a_new_version(client, registry):
    apply_clicks(registry)
    definition = user_clicks.model_dump(mode="json", by_alias=True)
    definition["aggregations"].append({"function": "min", "column": "amount", "windows": ["1h"]})

    response = client.post("/v1/feature-views", json=definition, headers=WRITE)

    assert response.json() == {
        "kind": "feature view",
        "name": "user_clicks",
        "action": "new version",
        "version": 2,
    }
    assert (
        client.get("/v1/feature-views/user_clicks?version=1", headers=READ).json()["version"] == 1
    )


def test_an_invalid_definition_is_refused_naming_the_field(client, registry):
    apply_clicks(registry)
    definition = user_clicks.model_dump(mode="json", by_alias=True)
    definition["step"] = "soon"

    response = client.post("/v1/feature-views", json=definition, headers=WRITE)

    assert response.status_code == 422
    assert response.json()["detail"].startswith("feature view 'user_clicks': step: ")


def test_history_of_one_entity(client, registry, api_settings):
    view = apply_clicks(registry)
    publish_rows(
        api_settings,
        registry,
        view,
        T0,
        T0 + 3 * HOUR,
        [row("u1", T0, 1, 5.0, 5.0), row("u1", T0 + 2 * HOUR, 0, 0.0, None)],
    )

    body = client.get(
        "/v1/feature-views/user_clicks/history",
        params={"user_id": "u1", "start": iso(T0 + HOUR), "end": iso(T0 + 3 * HOUR)},
        headers=READ,
    ).json()

    assert (body["view"], body["version"], body["entity"]) == ("user_clicks", 1, {"user_id": "u1"})
    assert [
        {k: r[k] for k in ("feature_ts", "count_1h", "amount_sum_1h", "amount_max_1h")}
        for r in body["rows"]
    ] == [
        {
            "feature_ts": "2024-05-01T12:00:00Z",
            "count_1h": 0,
            "amount_sum_1h": 0.0,
            "amount_max_1h": None,
        }
    ]


def test_history_refuses_unknown_keys_and_bad_times(client, registry):
    apply_clicks(registry)
    url = "/v1/feature-views/user_clicks/history"

    for params, detail in (
        ({"user": "u1"}, "user: not a join key of user_clicks (user_id)"),
        ({}, "user_id: missing join key"),
        ({"user_id": "u1", "start": "yesterday"}, "start: 'yesterday' is not an ISO-8601"),
    ):
        response = client.get(url, params=params, headers=READ)
        assert response.status_code == 422
        assert response.json()["detail"].startswith(detail)
