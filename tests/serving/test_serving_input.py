"""Bad input gets a 4xx whose `detail` names the field; keys are required and scoped."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from jstore.model import Entity
from serving.app import create_app
from tests.online.online_helpers import apply_clicks
from tests.serving.conftest import READ, WRITE

ENTITY = {"name": "shop", "join_keys": ["shop_id"]}


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"features": ["user_clicks:count_1h"]}, 422, "entities: Field required"),
        (
            {"features": ["user_clicks:count_1h"], "entities": []},
            422,
            "entities: List should have at least 1 item after validation, not 0",
        ),
        (
            {"entities": [{"user_id": "u1"}]},
            422,
            "features: give exactly one of features and feature_service",
        ),
        (
            {"features": ["count_1h"], "entities": [{"user_id": "u1"}]},
            422,
            "features.0: 'count_1h' is not a feature reference like view:feature or "
            "view@v2:feature",
        ),
        (
            {"features": ["nope:count_1h"], "entities": [{"user_id": "u1"}]},
            404,
            "unknown feature view 'nope'",
        ),
        (
            {"features": ["user_clicks:nope"], "entities": [{"user_id": "u1"}]},
            404,
            "features.0: feature view 'user_clicks' v1 has no feature 'nope'",
        ),
        (
            {"feature_service": "nope", "entities": [{"user_id": "u1"}]},
            404,
            "unknown feature service 'nope'",
        ),
        (
            {"features": ["user_clicks:count_1h"], "entities": [{"user_id": "u1"}, {"uid": 1}]},
            422,
            "entities.1.user_id: missing join key",
        ),
        (
            {"features": ["user_clicks:count_1h"], "entities": [{"user_id": ["u1"]}]},
            422,
            "entities.0.user_id: ['u1'] is not a string join key value",
        ),
    ],
)
def test_bad_online_requests(client, registry, body, status, detail):
    apply_clicks(registry)

    response = client.post("/v1/online", json=body, headers=READ)

    assert (response.status_code, response.json()) == (status, {"detail": detail})


def test_too_many_entities(api_settings, registry):
    apply_clicks(registry)
    settings = api_settings.model_copy(update={"api_max_entities": 2})
    body = {"features": ["user_clicks:count_1h"], "entities": [{"user_id": "u"}] * 3}
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/online", json=body, headers=READ)
    assert (response.status_code, response.json()) == (
        422,
        {"detail": "entities: at most 2 per request, got 3"},
    )


def test_a_request_without_a_key_is_unauthorized(client):
    for response in (
        client.get("/v1/entities"),
        client.get("/v1/entities", headers={"X-API-Key": "guess"}),
        client.post("/v1/online", json={}),
    ):
        assert response.status_code == 401
        assert response.json()["detail"].startswith("X-API-Key: ")


def test_a_read_key_reads_but_cannot_register(client, registry):
    assert client.get("/v1/entities", headers=READ).status_code == 200

    response = client.post("/v1/entities", json=ENTITY, headers=READ)

    assert (response.status_code, response.json()) == (
        403,
        {"detail": "X-API-Key: a read key cannot write"},
    )
    assert registry.list_entities() == []


def test_a_write_key_registers(client, registry):
    response = client.post("/v1/entities", json=ENTITY, headers=WRITE)

    assert response.json() == {
        "kind": "entity",
        "name": "shop",
        "action": "create",
        "version": None,
    }
    assert registry.list_entities() == [Entity(name="shop", join_keys=["shop_id"])]


def test_health_and_docs_need_no_key(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    assert "/v1/online" in client.get("/openapi.json").json()["paths"]


def test_auth_can_be_disabled_for_local_development(api_settings, registry):
    settings = api_settings.model_copy(update={"api_auth_disabled": True})
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/entities", json=ENTITY).status_code == 200
