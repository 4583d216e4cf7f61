"""POST /v1/training-sets: point-in-time rows, in order, streamed as JSON, CSV or Parquet."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.online.online_helpers import HOUR, T0, apply_clicks, publish_rows, row
from tests.serving.conftest import READ

MIDNIGHT = T0.replace(hour=0)
"""Coverage starts at the day's checkpoint, so every time of the day can be answered."""
FEATURES = ["user_clicks:count_1h", "user_clicks:amount_max_1h"]
ENTITY_ROWS = [
    {"user_id": "u1", "event_timestamp": "2024-05-01T11:30:00Z", "label": 1},
    {"user_id": "u1", "event_timestamp": "2024-05-01T10:30:00Z", "label": 0},
    {"user_id": "u2", "event_timestamp": "2024-05-01T10:15:00Z", "label": 0},
    {"user_id": "u1", "event_timestamp": "2024-05-01T13:00:00Z", "label": 1},
]
EXPECTED_FEATURES = [
    # u1 at 11:30 sees the 11:00 row; at 10:30 the 10:00 row; u2 has no row (empty window);
    # 13:00 is past the coverage [00:00, 12:00): null.
    {"user_clicks__count_1h": 2, "user_clicks__amount_max_1h": 5.0},
    {"user_clicks__count_1h": 1, "user_clicks__amount_max_1h": 5.0},
    {"user_clicks__count_1h": 0, "user_clicks__amount_max_1h": None},
    {"user_clicks__count_1h": None, "user_clicks__amount_max_1h": None},
]


@pytest.fixture
def published(api_settings, registry):
    view = apply_clicks(registry)
    publish_rows(
        api_settings,
        registry,
        view,
        MIDNIGHT,
        T0 + 2 * HOUR,
        [row("u1", T0, 1, 5.0, 5.0), row("u1", T0 + HOUR, 2, 7.5, 5.0)],
    )


def test_json_rows_in_json_out(client, published):
    response = client.post(
        "/v1/training-sets?format=json",
        json={"features": FEATURES, "entity_rows": ENTITY_ROWS},
        headers=READ,
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [
        {**entity, **features}
        for entity, features in zip(ENTITY_ROWS, EXPECTED_FEATURES, strict=True)
    ]
    assert json.loads(response.headers["JStore-Uncovered-Rows"]) == {"user_clicks__v1": 1}


def test_a_feature_service_and_parquet_out(client, published):
    response = client.post(
        "/v1/training-sets",
        json={"feature_service": "clicks_v1", "entity_rows": ENTITY_ROWS},
        headers=READ,
    )

    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.content))
    assert table.column_names == [
        "user_id",
        "event_timestamp",
        "label",
        "user_clicks__count_1h",
        "user_clicks__amount_max_1h",
    ]
    assert table.select(["user_clicks__count_1h", "user_clicks__amount_max_1h"]).to_pylist() == (
        EXPECTED_FEATURES
    )
    assert table.column("label").to_pylist() == [1, 0, 0, 1]
    assert json.loads(response.headers["JStore-Uncovered-Rows"]) == {"user_clicks__v1": 1}
    assert not any(key.startswith(b"jstore") for key in table.schema.metadata or {})


def test_an_uploaded_csv_file_and_csv_out(client, published):
    upload = io.BytesIO()
    pacsv.write_csv(pa.Table.from_pylist(ENTITY_ROWS), upload)

    response = client.post(
        "/v1/training-sets?format=csv",
        files={"entities": ("entities.csv", upload.getvalue(), "text/csv")},
        data={"features": ",".join(FEATURES)},
        headers=READ,
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = pacsv.read_csv(io.BytesIO(response.content))
    assert table.column("user_id").to_pylist() == ["u1", "u1", "u2", "u1"]
    assert table.select(["user_clicks__count_1h", "user_clicks__amount_max_1h"]).to_pylist() == (
        EXPECTED_FEATURES
    )


def test_an_uploaded_parquet_file(client, published):
    upload = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(ENTITY_ROWS), upload)

    response = client.post(
        "/v1/training-sets?format=json",
        files={"entities": ("rows.parquet", upload.getvalue())},
        data={"features": ",".join(FEATURES)},
        headers=READ,
    )

    assert [
        {k: r[k] for k in ("user_clicks__count_1h", "user_clicks__amount_max_1h")}
        for r in response.json()
    ] == EXPECTED_FEATURES


def test_csv_keys_keep_their_text(client, api_settings, registry):
    """A CSV key like `007` stays the string "007" (the view's key type), not the number 7."""
    view = apply_clicks(registry)
    publish_rows(api_settings, registry, view, MIDNIGHT, T0 + HOUR, [row("007", T0, 3, 9.0, 4.0)])

    upload = b"user_id,event_timestamp\n007,2024-05-01T10:30:00Z\n"
    response = client.post(
        "/v1/training-sets?format=json",
        files={"entities": ("entities.csv", upload)},
        data={"features": FEATURES[0]},
        headers=READ,
    )

    assert response.status_code == 200
    assert response.json() == [
        {
            "user_id": "007",
            "event_timestamp": "2024-05-01T10:30:00Z",
            "user_clicks__count_1h": 3,
        }
    ]


@pytest.mark.parametrize(
    ("kwargs", "status", "detail"),
    [
        ({"json": {"features": FEATURES}}, 422, "entity_rows: Field required"),
        (
            {"json": {"features": FEATURES, "entity_rows": [{"user_id": "u1"}]}},
            422,
            "entity_rows.0.event_timestamp: missing",
        ),
        (
            {"files": {"entities": ("rows.txt", b"hello")}, "data": {"features": FEATURES[0]}},
            422,
            "entities: 'rows.txt' is not a .parquet or .csv file",
        ),
        (
            {
                "files": {
                    "entities": (
                        "rows.csv",
                        b"user_id,event_timestamp\nu1,2024-05-01T10:30:00Z\nu1,\n",
                    )
                },
                "data": {"features": FEATURES[0]},
            },
            422,
            "event_timestamp: row 1 has no timestamp",
        ),
        (
            {"data": {"features": FEATURES[0]}, "files": {"other": ("a.csv", b"a\n1\n")}},
            422,
            "entities: upload the entity rows as a file field",
        ),
    ],
)
def test_bad_training_set_requests(client, published, kwargs, status, detail):
    response = client.post("/v1/training-sets", headers=READ, **kwargs)

    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)


def test_json_rows_have_the_union_of_their_columns(client, published):
    """A column only later rows carry (a label) is kept; rows without it have null there."""
    rows = [
        {"user_id": "u1", "event_timestamp": "2024-05-01T11:30:00Z"},
        {"user_id": "u1", "event_timestamp": "2024-05-01T10:30:00Z", "label": 1},
        {"event_timestamp": "2024-05-01T10:15:00Z", "weight": 0.5, "user_id": "u2"},
    ]

    response = client.post(
        "/v1/training-sets?format=json",
        json={"features": [FEATURES[0]], "entity_rows": rows},
        headers=READ,
    )

    assert response.json() == [
        {
            "user_id": "u1",
            "event_timestamp": "2024-05-01T11:30:00Z",
            "label": None,
            "weight": None,
            "user_clicks__count_1h": 2,
        },
        {
            "user_id": "u1",
            "event_timestamp": "2024-05-01T10:30:00Z",
            "label": 1,
            "weight": None,
            "user_clicks__count_1h": 1,
        },
        {
            "user_id": "u2",
            "event_timestamp": "2024-05-01T10:15:00Z",
            "label": None,
            "weight": 0.5,
            "user_clicks__count_1h": 0,
        },
    ]


GOOD = '{"user_id": "u1", "event_timestamp": "2024-05-01T10:30:00Z", "label": 1}'


@pytest.mark.parametrize(
    ("row", "detail"),
    [
        ('{"event_timestamp": "2024-05-01T10:30:00Z"}', "entity_rows.3.user_id: missing join key"),
        (
            '{"user_id": null, "event_timestamp": "2024-05-01T10:30:00Z"}',
            "entity_rows.3.user_id: missing join key",
        ),
        ('{"user_id": "u1"}', "entity_rows.3.event_timestamp: missing"),
        ('{"user_id": "u1", "event_timestamp": null}', "entity_rows.3.event_timestamp: missing"),
        (
            '{"user_id": "u1", "event_timestamp": 1714559400}',
            "entity_rows.3.event_timestamp: 1714559400 is not ISO-8601 text like "
            "2024-05-01T10:00:00Z",
        ),
        (
            '{"user_id": "u1", "event_timestamp": "soon"}',
            "entity_rows.3.event_timestamp: 'soon' is not an ISO-8601 timestamp like "
            "2024-05-01T10:00:00Z",
        ),
        (
            '{"user_id": "u1", "event_timestamp": "9999-12-31T23:00:00-05:00"}',
            "entity_rows.3.event_timestamp: '9999-12-31T23:00:00-05:00' is outside the range "
            "of timestamps",
        ),
        (
            '{"user_id": ["u1"], "event_timestamp": "2024-05-01T10:30:00Z"}',
            "entity_rows.3.user_id: a list is not a column value (give text, a number, "
            "true/false or null)",
        ),
        (
            '{"user_id": true, "event_timestamp": "2024-05-01T10:30:00Z"}',
            "entity_rows.3.user_id: True is not a string join key value",
        ),
        (
            '{"user_id": "u\\u0000", "event_timestamp": "2024-05-01T10:30:00Z"}',
            "entity_rows.3.user_id: text with a NUL character cannot be a key",
        ),
        (
            '{"user_id": "u1", "event_timestamp": "2024-05-01T10:30:00Z", "label": "yes"}',
            "entity_rows.3.label: text where earlier rows have a number",
        ),
        (
            '{"user_id": "u1", "event_timestamp": "2024-05-01T10:30:00Z", "label": NaN}',
            "entity_rows.3.label: NaN and infinity are not JSON numbers",
        ),
        (
            '{"user_id": "u1", "event_timestamp": "2024-05-01T10:30:00Z", "label": 1e999}',
            "entity_rows.3.label: NaN and infinity are not JSON numbers",
        ),
        (
            '{"user_id": "u1", "event_timestamp": "2024-05-01T10:30:00Z", '
            '"label": 18446744073709551616}',
            "entity_rows.3.label: an integer outside the 64-bit range",
        ),
        (
            '{"user_id": "u1", "event_timestamp": "2024-05-01T10:30:00Z", "label": {}}',
            "entity_rows.3.label: an object is not a column value (give text, a number, "
            "true/false or null)",
        ),
    ],
)
def test_bad_json_rows_are_refused_naming_row_and_field(client, published, row, detail):
    body = f'{{"features": ["{FEATURES[0]}"], "entity_rows": [{GOOD}, {GOOD}, {GOOD}, {row}]}}'

    response = client.post(
        "/v1/training-sets?format=json",
        content=body,
        headers={**READ, "Content-Type": "application/json"},
    )

    assert (response.status_code, response.json()) == (422, {"detail": detail})


def test_uploads_the_stores_or_the_format_cannot_hold_are_refused(client, published):
    nul_key = b"user_id,event_timestamp\nu1,2024-05-01T10:30:00Z\nu\x00,2024-05-01T10:30:00Z\n"
    nested = io.BytesIO()
    pq.write_table(
        pa.table(
            {"user_id": ["u1"], "event_timestamp": ["2024-05-01T10:30:00Z"], "tags": [[1, 2]]}
        ),
        nested,
    )

    answers = [
        client.post(
            f"/v1/training-sets?format={fmt}",
            files={"entities": (name, data)},
            data={"features": FEATURES[0]},
            headers=READ,
        )
        for fmt, name, data in (
            ("json", "rows.csv", nul_key),
            ("csv", "rows.parquet", nested.getvalue()),
        )
    ]

    assert [(a.status_code, a.json()) for a in answers] == [
        (422, {"detail": "user_id: row 1 holds a NUL character, which no key can"}),
        (
            422,
            {
                "detail": "tags: list<element: int64> values cannot be written as CSV; ask for "
                "format=json or format=parquet"
            },
        ),
    ]


def test_an_upload_over_the_size_limit_is_refused(api_settings, registry, published):
    from fastapi.testclient import TestClient

    from serving.app import create_app

    settings = api_settings.model_copy(update={"api_max_upload_bytes": 100})
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/training-sets",
            files={
                "entities": ("rows.csv", b"user_id,event_timestamp\n" + b"u1,2024-05-01\n" * 20)
            },
            data={"features": FEATURES[0]},
            headers=READ,
        )
    assert (response.status_code, response.json()) == (
        413,
        {"detail": "entities: larger than the limit of 100 bytes"},
    )
