"""Rows of the example view user_purchases (step 1h, windows 1h 1d 7d 30d) for staged runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

START = datetime(2024, 5, 1, 0, tzinfo=UTC)
END = datetime(2024, 5, 1, 6, tzinfo=UTC)


def purchase_row(user_id: str, hour: int, amounts: list[float] | None = None, **values: Any):
    """A consistent row of user_purchases at 2024-05-01 `hour`:00 whose every window holds
    `amounts` (default [10.0]); keyword arguments override single features."""
    amounts = [10.0] if amounts is None else amounts
    row: dict[str, Any] = {"user_id": user_id, "feature_ts": START.replace(hour=hour)}
    for window in ("1h", "1d", "7d", "30d"):
        row[f"count_{window}"] = len(amounts)
        row[f"amount_sum_{window}"] = float(sum(amounts))
        row[f"amount_avg_{window}"] = sum(amounts) / len(amounts) if amounts else None
        row[f"amount_max_{window}"] = max(amounts) if amounts else None
    return row | values
