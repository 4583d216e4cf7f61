"""Bad input gets a 4xx whose `detail` names the field; keys are required and scoped."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from jstore.model import Entity
from serving.app import create_app
from tests.offline.conftest import SMALL_REPO
from tests.online.online_helpers import apply_clicks, user
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


RAW_BODY_CASES = [
    # Python's JSON reads these, but no store (nor JSON itself) can hold them.
    ('{"user_id": NaN}', "entities.0.user_id: NaN and infinity are not JSON numbers"),
    (
        '{"user_id": "u1", "score": -Infinity}',
        "entities.0.score: NaN and infinity are not JSON numbers",
    ),
    ('{"user_id": 1e400}', "entities.0.user_id: NaN and infinity are not JSON numbers"),
    (
        '{"user_id": 99999999999999999999}',
        "entities.0.user_id: an integer outside the 64-bit range",
    ),
    (
        '{"user_id": "u1", "tags": [1, 2e999]}',
        "entities.0.tags.1: NaN and infinity are not JSON numbers",
    ),
    (
        '{"user_id": "\\ud800"}',
        "entities.0.user_id: text with a lone surrogate is not valid Unicode",
    ),
    ('{"user_id": "u\\u0000"}', "entities.0.user_id: text with a NUL character cannot be a key"),
]


@pytest.mark.parametrize(("entity", "detail"), RAW_BODY_CASES)
def test_online_values_no_store_can_hold(client, registry, entity, detail):
    apply_clicks(registry)
    body = f'{{"features": ["user_clicks:count_1h"], "entities": [{{"user_id": "u0"}}, {entity}]}}'

    response = client.post(
        "/v1/online", content=body, headers={**READ, "Content-Type": "application/json"}
    )

    assert (response.status_code, response.json()) == (
        422,
        {"detail": detail.replace("entities.0.", "entities.1.")},
    )


def test_text_no_store_can_hold_in_references_and_definitions(client, registry):
    apply_clicks(registry)
    headers = {**WRITE, "Content-Type": "application/json"}

    answers = [
        client.post("/v1/online", content=body, headers=headers)
        for body in (
            '{"feature_service": "\\ud800", "entities": [{"user_id": "u1"}]}',
            '{"features": ["user_clicks:count_1h", "\\udfff"], "entities": [{"user_id": "u1"}]}',
        )
    ]
    answers.append(
        client.post(
            "/v1/entities",
            content='{"name": "shop", "join_keys": ["shop_id"], "description": "\\ud800"}',
            headers=headers,
        )
    )

    assert [(a.status_code, a.json()) for a in answers] == [
        (422, {"detail": "feature_service: text with a lone surrogate is not valid Unicode"}),
        (422, {"detail": "features: text with a lone surrogate is not valid Unicode"}),
        (422, {"detail": "description: text with a lone surrogate is not valid Unicode"}),
    ]
    assert registry.list_entities() == [user]


@pytest.mark.parametrize(
    ("account_id", "detail"),
    [
        (2**63, "entities.0.account_id: an integer outside the 64-bit range"),
        ("99999999999999999999", "entities.0.account_id: an integer outside the 64-bit range"),
        (1.5, "entities.0.account_id: 1.5 is not a int64 join key value"),
        ("seven", "entities.0.account_id: 'seven' is not a int64 join key value"),
        (True, "entities.0.account_id: True is not a int64 join key value"),
    ],
)
def test_integer_keys_must_be_64_bit_integers(client, registry, account_id, detail):
    registry.apply(SMALL_REPO)
    body = {
        "features": ["account_spend:count_1h"],
        "entities": [{"bank": "b1", "account_id": account_id}],
    }

    response = client.post("/v1/online", json=body, headers=READ)

    assert (response.status_code, response.json()) == (422, {"detail": detail})


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        (
            "/v1/feature-views/user_clicks/history?user_id=u1&start=0001-01-01T00:00:00%2B01:00",
            "start: '0001-01-01T00:00:00+01:00' is outside the range of timestamps",
        ),
        (
            "/v1/feature-views/user_clicks/history?user_id=u%00",
            "user_id: text with a NUL character cannot be a key",
        ),
        (
            "/v1/feature-views/user_clicks?version=99999999999999999999",
            "version: Input should be less than or equal to 2147483647",
        ),
        (
            "/v1/feature-views/user_clicks?version=0",
            "version: Input should be greater than or equal to 1",
        ),
        (
            "/quality/summary?runs=100000000000000000000",
            "runs: Input should be less than or equal to 100",
        ),
    ],
)
def test_bad_query_parameters(client, registry, url, detail):
    apply_clicks(registry)

    response = client.get(url, headers=READ)

    assert (response.status_code, response.json()) == (422, {"detail": detail})


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
