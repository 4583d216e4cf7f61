"""Text is text through the API (issue 10, point 2): keys and values such as `NA`, `null`,
`#N/A` and the empty string, published, materialized, then looked up online (from Redis and
from the offline store), read from history and joined into training sets (JSON rows, an
uploaded CSV file, CSV out). None of them becomes null."""

from __future__ import annotations

from jstore.online import materialize
from jstore.online.lookup import iso
from tests.serving.conftest import READ
from tests.text_values import FEATURES, NULL_PAGE_USER, PAGES, T0, TEXTS, published_pages

USERS = [*TEXTS, NULL_PAGE_USER]
EXPECTED_PAGES = {**PAGES, NULL_PAGE_USER: None}


def test_online_lookups_from_the_offline_store_and_from_redis(client, api_settings, registry):
    published_pages(api_settings, registry)
    body = {"features": FEATURES, "entities": [{"user_id": user} for user in USERS]}

    before = client.post("/v1/online", json=body, headers=READ).json()
    materialize(api_settings, registry)
    after = client.post("/v1/online", json=body, headers=READ).json()

    for answer, status in ((before, "fallback"), (after, "present")):
        assert answer["rows"] == [
            {
                "entity": {"user_id": user},
                "values": {FEATURES[0]: 1, FEATURES[1]: EXPECTED_PAGES[user]},
                "statuses": dict.fromkeys(FEATURES, status),
                "feature_ts": {"user_pages": iso(T0)},
            }
            for user in USERS
        ]


def test_history_of_text_keys(client, api_settings, registry):
    published_pages(api_settings, registry)
    url = "/v1/feature-views/user_pages/history"

    answers = {
        user: client.get(url, params={"user_id": user}, headers=READ).json() for user in TEXTS
    }

    assert {user: answer["entity"] for user, answer in answers.items()} == {
        user: {"user_id": user} for user in TEXTS
    }
    assert {
        user: [r["page_last_1h"] for r in answer["rows"]] for user, answer in answers.items()
    } == {user: [PAGES[user]] for user in TEXTS}


def test_json_training_rows(client, api_settings, registry):
    published_pages(api_settings, registry)
    rows = [
        {"user_id": user, "event_timestamp": "2024-05-01T10:30:00Z", "note": text}
        for user, text in zip(USERS, [*reversed(TEXTS), None], strict=True)
    ]

    response = client.post(
        "/v1/training-sets?format=json",
        json={"features": FEATURES, "entity_rows": rows},
        headers=READ,
    )

    assert response.json() == [
        {
            **row,
            "user_pages__count_1h": 1,
            "user_pages__page_last_1h": EXPECTED_PAGES[row["user_id"]],
        }
        for row in rows
    ]


def test_an_uploaded_csv_file_and_a_csv_training_set(client, api_settings, registry):
    """In the file sent, an empty cell of a string column is the empty string; in the file
    answered, text is quoted (`"NA"`, `""`) and a null is an empty cell."""
    published_pages(api_settings, registry)
    upload = (
        "user_id,event_timestamp,note\n"
        "NA,2024-05-01T10:30:00Z,null\n"
        ",2024-05-01T10:30:00Z,#N/A\n"
        f"{NULL_PAGE_USER},2024-05-01T10:30:00Z,\n"
    )

    response = client.post(
        "/v1/training-sets?format=csv",
        files={"entities": ("entities.csv", upload.encode())},
        data={"features": ",".join(FEATURES)},
        headers=READ,
    )

    assert response.text.splitlines() == [
        '"user_id","event_timestamp","note","user_pages__count_1h","user_pages__page_last_1h"',
        '"NA","2024-05-01T10:30:00Z","null",1,"N/A"',
        '"","2024-05-01T10:30:00Z","#N/A",1,"None"',
        f'"{NULL_PAGE_USER}","2024-05-01T10:30:00Z","",1,',
    ]
