"""No input makes the API answer 5xx (issue 10, point 6): schemathesis against the real app.

The app runs over the real servers, with user_clicks published and materialized, so lookups,
training sets and history reach Redis, PostgreSQL and MongoDB. For every operation of the app's
own OpenAPI schema, schemathesis generates a few requests that fit the schema and a few that do
not, and checks that no answer is a server error and that each status code, content type and
body is the one documented (so every JSON body parses: NaN and infinity never leave the API).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
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
