"""With Redis down, lookups are answered from the offline store and say so; /ready tells."""

from __future__ import annotations

from fastapi.testclient import TestClient

from jstore.durations import iso
from jstore.online import materialize
from serving.app import create_app
from tests.online.online_helpers import HOUR, apply_clicks, publish_rows, row
from tests.serving.conftest import READ

REFS = ["user_clicks:count_1h", "user_clicks:amount_max_1h"]


def test_redis_stopped_mid_test_falls_back_to_the_offline_store(
    now_step, api_settings, registry, own_redis
):
    settings = api_settings.model_copy(update={"redis_url": own_redis.url})
    view = apply_clicks(registry)
    publish_rows(
        settings,
        registry,
        view,
        now_step - HOUR,
        now_step,
        [row("u1", now_step - HOUR, 2, 7.5, 5.0)],
    )
    materialize(settings, registry)
    body = {"features": REFS, "entities": [{"user_id": "u1"}, {"user_id": "nobody"}]}

    with TestClient(create_app(settings)) as client:
        before = client.post("/v1/online", json=body, headers=READ).json()
        own_redis.stop()
        after = client.post("/v1/online", json=body, headers=READ).json()
        ready = client.get("/ready")

    assert [r["statuses"] for r in before["rows"]] == [dict.fromkeys(REFS, "present")] * 2
    assert [r["statuses"] for r in after["rows"]] == [dict.fromkeys(REFS, "fallback")] * 2
    assert (
        [r["values"] for r in after["rows"]]
        == [r["values"] for r in before["rows"]]
        == [
            {"user_clicks:count_1h": 2, "user_clicks:amount_max_1h": 5.0},
            {"user_clicks:count_1h": 0, "user_clicks:amount_max_1h": None},
        ]
    )
    assert [r["feature_ts"] for r in after["rows"]] == [
        {"user_clicks": iso(now_step - HOUR)},
        {"user_clicks": None},
    ]
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert ready.json()["servers"]["redis"]["ok"] is False
    assert ready.json()["servers"]["postgres"] == {"ok": True, "error": None}
