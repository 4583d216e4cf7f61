"""No input makes the API answer 5xx (issue 10, point 6): schemathesis against the real app.

The app runs over the real servers, with user_clicks published and materialized, so lookups,
training sets and history reach Redis, PostgreSQL and MongoDB. For every operation of the app's
own OpenAPI schema, schemathesis generates a few requests that fit the schema and a few that do
not, and checks that no answer is a server error and that each status code, content type and
body is the one documented (so every JSON body parses: NaN and infinity never leave the API).
Schemathesis rarely names a real feature, so two property tests add requests that do: any JSON
values as entities and entity rows, and any bytes as an uploaded entity file.
"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serving.app import create_app
from tests.serving.conftest import WRITE
from tests.serving.test_serving_json_out import strict_json

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 10
"""Per operation and mode: enough to meet each kind of bad input, few enough for a fast suite."""


def test_no_request_gets_a_server_error_or_an_undocumented_answer(api_settings, fresh_clicks):
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(api_settings))
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                case.call_and_validate(headers=WRITE, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:  # nothing to vary: no parameters and no body
                continue
            except Exception as e:
                failures.append(f"{operation.label} ({mode.value}): {type(e).__name__}: {e}")
    assert not failures, "\n\n".join(failures)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
"""Any value Python's JSON reads: huge integers, NaN and infinity included."""
TIMES = st.sampled_from(
    ["2024-05-01T10:30:00Z", "2024-05-01T10:30:00", "0001-01-01T00:00:00+01:00", "soon", ""]
)
ROWS = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "user_id": st.sampled_from(["u1", "u2", "NA", "", "u\x00"]) | JSON_VALUES,
            "event_timestamp": TIMES | JSON_VALUES,
            "label": JSON_VALUES,
        },
    ),
    min_size=1,
    max_size=4,
)


def test_any_json_entities_get_an_answer_or_a_422(client, fresh_clicks):
    """With valid feature references, so every request reaches Redis and PostgreSQL."""
    features = ["user_clicks:count_1h", "user_clicks:amount_max_1h"]

    @given(rows=ROWS, fmt=st.sampled_from(["json", "csv", "parquet"]))
    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(rows, fmt):
        online = client.post(
            "/v1/online",
            content=json.dumps({"features": features, "entities": rows}),
            headers={**WRITE, "Content-Type": "application/json"},
        )
        training = client.post(
            f"/v1/training-sets?format={fmt}",
            content=json.dumps({"features": features, "entity_rows": rows}),
            headers={**WRITE, "Content-Type": "application/json"},
        )
        assert online.status_code in (200, 422), online.text
        assert training.status_code in (200, 422), training.text
        strict_json(online.text)
        if fmt == "json" or training.status_code == 422:
            strict_json(training.text)

    check()


CSV_CELLS = st.sampled_from(
    ["u1", "NA", "", '""', "2024-05-01T10:30:00Z", "1", "1e999", "\x00", ","]
)
UPLOADS = st.one_of(
    st.binary(max_size=64),
    st.lists(st.lists(CSV_CELLS, min_size=1, max_size=3), max_size=3).map(
        lambda rows: (
            "user_id,event_timestamp,label\n" + "\n".join(",".join(r) for r in rows)
        ).encode()
    ),
)


def test_any_uploaded_file_gets_an_answer_or_a_422(client, fresh_clicks):
    @given(data=UPLOADS, name=st.sampled_from(["rows.csv", "rows.parquet"]))
    @settings(
        max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(data, name):
        response = client.post(
            "/v1/training-sets?format=json",
            files={"entities": (name, data)},
            data={"features": "user_clicks:count_1h"},
            headers=WRITE,
        )
        assert response.status_code in (200, 422), response.text
        strict_json(response.text)

    check()
