"""The entity rows of a JSON training-set request as one Arrow table.

- The columns are the union over all rows, in the order first seen; a row without a column
  has null there (a label only later rows carry is kept, not dropped).
- Every row needs each join key and `event_timestamp`: `entity_rows.3.user_id: missing join
  key`, `entity_rows.3.event_timestamp: missing`. Keys are typed by their view and checked to
  fit the stores (`jstore.online.lookup.entity_keys`); timestamps are ISO-8601 text.
- Other values must be table cells (text, numbers, true/false, null), one kind per column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from jstore.arrow_types import ARROW_TYPES
from jstore.durations import parse_timestamp
from jstore.model import FeatureSpec, ResolvedView
from jstore.offline.pit_join import EVENT_TIMESTAMP
from jstore.online.lookup import entity_keys
from serving.json_values import check_rows

FIELD = "entity_rows"


def entity_rows_table(
    rows: Sequence[dict[str, Any]], features: list[tuple[ResolvedView, FeatureSpec]]
) -> pa.Table:
    """Raises ValueError naming `entity_rows.<row>.<column>` (see the module docstring)."""
    check_rows(rows, FIELD, nested=False)
    columns: dict[str, pa.Array] = {}
    for view, _ in features:
        keys = entity_keys(view, rows, FIELD)
        for j, key in enumerate(view.join_keys):
            if key not in columns:
                dtype = ARROW_TYPES[view.key_dtypes[key]]
                columns[key] = pa.array([key_tuple[j] for key_tuple in keys], dtype)
    _check_timestamps(rows)
    names = dict.fromkeys(name for row in rows for name in row)
    return pa.table({n: columns[n] if n in columns else _column(rows, n) for n in names})


def _check_timestamps(rows: Sequence[dict[str, Any]]) -> None:
    for i, row in enumerate(rows):
        value = row.get(EVENT_TIMESTAMP)
        where = f"{FIELD}.{i}.{EVENT_TIMESTAMP}"
        if value is None:
            raise ValueError(f"{where}: missing")
        if not isinstance(value, str):
            raise ValueError(f"{where}: {value!r} is not ISO-8601 text like 2024-05-01T10:00:00Z")
        try:
            parse_timestamp(value)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        except OverflowError:
            raise ValueError(f"{where}: {value!r} is outside the range of timestamps") from None


def _column(rows: Sequence[dict[str, Any]], name: str) -> pa.Array:
    values = [row.get(name) for row in rows]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        kinds = [_kind(v) for v in values]
        first = next(k for k in kinds if k is not None)
        i = next(i for i, k in enumerate(kinds) if k not in (None, first))
        message = f"{FIELD}.{i}.{name}: {kinds[i]} where earlier rows have {first}"
        raise ValueError(message) from None


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true/false"
    return "a number" if isinstance(value, int | float) else "text"
