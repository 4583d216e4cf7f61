"""POST /v1/online: the contract of DESIGN.md, field by field, with each status."""

from __future__ import annotations

from jstore.durations import iso
from tests.online.online_helpers import HOUR, T0, apply_clicks, publish_rows, row
from tests.serving.conftest import READ

REFS = ["user_clicks:count_1h", "user_clicks:amount_sum_1h", "user_clicks:amount_max_1h"]


def lookup(client, entities, **selection):
    return client.post("/v1/online", json={**selection, "entities": entities}, headers=READ)


def test_present_values_and_the_empty_window_values_of_an_entity_without_a_key(
    now_step, client, fresh_clicks
):
    response = lookup(client, [{"user_id": "u1"}, {"user_id": "nobody"}], features=REFS)

    assert response.status_code == 200
    assert response.json() == {
        "features": REFS,
        "rows": [
            {
                "entity": {"user_id": "u1"},
                "values": dict(zip(REFS, [2, 7.5, 5.0], strict=True)),
                "statuses": dict.fromkeys(REFS, "present"),
                "feature_ts": {"user_clicks": iso(now_step - HOUR)},
            },
            {
                "entity": {"user_id": "nobody"},
                "values": dict(zip(REFS, [0, 0, None], strict=True)),
                "statuses": dict.fromkeys(REFS, "present"),
                "feature_ts": {"user_clicks": None},
            },
        ],
    }


def test_a_feature_service_names_the_features_in_its_order(client, fresh_clicks):
    body = lookup(client, [{"user_id": "u2"}], feature_service="clicks_v1").json()

    assert body["features"] == ["user_clicks:count_1h", "user_clicks:amount_max_1h"]
    assert body["rows"][0]["values"] == {
        "user_clicks:count_1h": 1,
        "user_clicks:amount_max_1h": 3.0,
    }


def test_a_pinned_version_is_named_with_it(now_step, client, fresh_clicks):
    body = lookup(client, [{"user_id": "u2"}], features=["user_clicks@v1:count_1h"]).json()

    assert body["rows"][0]["feature_ts"] == {"user_clicks@v1": iso(now_step - 2 * HOUR)}
    assert body["rows"][0]["statuses"] == {"user_clicks@v1:count_1h": "present"}


def test_a_view_whose_coverage_lags_more_than_its_ttl_is_expired(client, api_settings, registry):
    view = apply_clicks(registry)
    publish_rows(api_settings, registry, view, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])

    body = lookup(client, [{"user_id": "u1"}], features=REFS).json()

    assert body["rows"][0]["values"] == dict.fromkeys(REFS)
    assert body["rows"][0]["statuses"] == dict.fromkeys(REFS, "expired")
    assert body["rows"][0]["feature_ts"] == {"user_clicks": None}


def test_a_view_without_coverage_is_missing(client, registry):
    apply_clicks(registry)

    body = lookup(client, [{"user_id": "u1"}], features=REFS).json()

    assert body["rows"][0]["values"] == dict.fromkeys(REFS)
    assert body["rows"][0]["statuses"] == dict.fromkeys(REFS, "missing")


def test_a_publish_not_yet_materialized_is_answered_from_the_offline_store(
    now_step, client, api_settings, registry, fresh_clicks
):
    publish_rows(
        api_settings,
        registry,
        fresh_clicks,
        now_step - HOUR,
        now_step,
        [row("u1", now_step - HOUR, 4, 20.0, 9.0)],
    )

    body = lookup(client, [{"user_id": "u1"}, {"user_id": "nobody"}], features=REFS).json()

    assert [r["values"] for r in body["rows"]] == [
        dict(zip(REFS, [4, 20.0, 9.0], strict=True)),
        dict(zip(REFS, [0, 0, None], strict=True)),
    ]
    assert [r["statuses"] for r in body["rows"]] == [dict.fromkeys(REFS, "fallback")] * 2
    assert body["rows"][0]["feature_ts"] == {"user_clicks": iso(now_step - HOUR)}


def test_the_metrics_count_hits_misses_and_fallbacks(client, fresh_clicks):
    lookup(client, [{"user_id": "u1"}, {"user_id": "nobody"}], features=REFS)

    text = client.get("/metrics").text

    assert "jstore_online_redis_hits_total 1.0" in text
    assert "jstore_online_redis_misses_total 1.0" in text
    assert "jstore_online_fallbacks_total 0.0" in text
    assert 'jstore_view_freshness_seconds{view="user_clicks"}' in text
    assert 'jstore_request_seconds_count{method="POST",route="/v1/online",status="200"} 1.0' in text


def test_a_published_view_never_materialized_is_answered_from_the_offline_store(
    now_step, client, api_settings, registry
):
    view = apply_clicks(registry)
    publish_rows(
        api_settings,
        registry,
        view,
        now_step - HOUR,
        now_step,
        [row("u1", now_step - HOUR, 3, 9.0, 6.0)],
    )

    body = lookup(client, [{"user_id": "u1"}], features=REFS).json()

    assert body["rows"][0]["values"] == dict(zip(REFS, [3, 9.0, 6.0], strict=True))
    assert body["rows"][0]["statuses"] == dict.fromkeys(REFS, "fallback")
