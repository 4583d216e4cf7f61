"""JSON in and out of the API: request values checked to fit the stores, responses always JSON.

Python's JSON reads `NaN`, `Infinity` and integers of any size, none of which the stores (or
JSON itself, RFC 8259) can hold: a request carrying one gets a 422 naming where it is. A stored
NaN or infinity (which the lander and the compute never produce) is answered as null, so no
response body is ever invalid JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from fastapi.responses import JSONResponse

from jstore.online.lookup import INT64

LONE_SURROGATE = "text with a lone surrogate is not valid Unicode"


def is_unicode(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8 (JSON's `"\\ud800"` decodes to a lone surrogate,
    which MongoDB, Redis and PostgreSQL all refuse)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def first_unfit(value: Any, where: str, nested: bool = True) -> str | None:
    """`<where>: <why>` for the first value inside `value` that cannot travel through the
    stores, or None when all can. Without `nested`, `value` must be text, a number,
    true/false or null (a table cell); with it, lists and objects are walked."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if INT64[0] <= value <= INT64[1]:
            return None
        return f"{where}: an integer outside the 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where}: NaN and infinity are not JSON numbers"
    if isinstance(value, str):
        return None if is_unicode(value) else f"{where}: {LONE_SURROGATE}"
    if not nested:
        kind = "a list" if isinstance(value, list) else "an object"
        return f"{where}: {kind} is not a column value (give text, a number, true/false or null)"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if (why := first_unfit(item, f"{where}.{key}")) is not None:
            return why
    return None


def check_rows(rows: Sequence[dict[str, Any]], field: str, nested: bool) -> None:
    """Raises ValueError naming `<field>.<row>.<name>` for the first value that does not fit."""
    for i, row in enumerate(rows):
        for name, value in row.items():
            if (why := first_unfit(value, f"{field}.{i}.{name}", nested)) is not None:
                raise ValueError(why)


def finite(value: Any) -> Any:
    """`value` with every NaN and infinity replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """JSON text of `value`, NaN and infinity as null (the check costs nothing when none)."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **options)


class FiniteJSONResponse(JSONResponse):
    """The app's JSON responses: NaN and infinity answered as null, never as invalid JSON."""

    def render(self, content: Any) -> bytes:
        return dumps(content, separators=(",", ":")).encode()
