"""Every JSON body the API sends is JSON (issue 10, point 6): a NaN or an infinity in storage,
which the lander and the compute never produce, is answered as null by every path."""

from __future__ import annotations

import json

import psycopg
from psycopg import sql

from jstore.durations import floor_to_step
from jstore.online import materialize
from jstore.online.lookup import iso
from tests.online.online_helpers import HOUR, apply_clicks, publish_rows, row
from tests.serving.conftest import READ

REFS = ["user_clicks:count_1h", "user_clicks:amount_sum_1h", "user_clicks:amount_max_1h"]


def strict_json(text: str):
    """`json.loads` without Python's extensions: NaN, Infinity and -Infinity are refused."""

    def refuse(constant: str):
        raise AssertionError(f"{constant} in a response body")

    return json.loads(text, parse_constant=refuse)


def publish_non_finite(settings, registry, now_step):
    """u1's row at the previous step: amount_sum_1h infinite, amount_max_1h NaN (set in
    PostgreSQL after the publish, as no path of JStore writes them)."""
    view = apply_clicks(registry)
    start = floor_to_step(now_step - HOUR, view.definition.checkpoint_period)
    publish_rows(settings, registry, view, start, now_step, [row("u1", now_step - HOUR, 2, 1, 1)])
    with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET amount_sum_1h = 'Infinity', amount_max_1h = 'NaN', "
                "_computed_at = now()"
            ).format(sql.Identifier(settings.offline_schema, view.table))
        )


def test_online_answers_null_from_the_offline_store_and_from_redis(
    now_step, client, api_settings, registry
):
    publish_non_finite(api_settings, registry, now_step)
    body = {"features": REFS, "entities": [{"user_id": "u1"}]}

    before = client.post("/v1/online", json=body, headers=READ)
    materialize(api_settings, registry)
    after = client.post("/v1/online", json=body, headers=READ)

    for response, status in ((before, "fallback"), (after, "present")):
        assert strict_json(response.text)["rows"] == [
            {
                "entity": {"user_id": "u1"},
                "values": dict(zip(REFS, [2, None, None], strict=True)),
                "statuses": dict.fromkeys(REFS, status),
                "feature_ts": {"user_clicks": iso(now_step - HOUR)},
            }
        ]


def test_history_and_json_training_sets_answer_null(now_step, client, api_settings, registry):
    publish_non_finite(api_settings, registry, now_step)

    history = client.get(
        "/v1/feature-views/user_clicks/history", params={"user_id": "u1"}, headers=READ
    )
    training = client.post(
        "/v1/training-sets?format=json",
        json={
            "features": REFS,
            "entity_rows": [{"user_id": "u1", "event_timestamp": iso(now_step - HOUR)}],
        },
        headers=READ,
    )

    rows = strict_json(history.text)["rows"]
    assert [(r["count_1h"], r["amount_sum_1h"], r["amount_max_1h"]) for r in rows] == [
        (2, None, None)
    ]
    assert strict_json(training.text) == [
        {
            "user_id": "u1",
            "event_timestamp": iso(now_step - HOUR),
            "user_clicks__count_1h": 2,
            "user_clicks__amount_sum_1h": None,
            "user_clicks__amount_max_1h": None,
        }
    ]
