"""Shared by tests/online and tests/serving: a small view, and rows published to the offline store
the way compute does it (a staged run, validated, then published)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jstore.config import Settings
from jstore.model import (
    Aggregation,
    Entity,
    EventSource,
    FeatureService,
    FieldSpec,
    ResolvedView,
    WindowedFeatureView,
)
from jstore.registry import Registry, new_run_id
from jstore.repo import FeatureRepo
from tests.factories import stage_rows, validate_and_publish

T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)

user = Entity(name="user", join_keys=["user_id"])
clicks = EventSource(
    name="clicks",
    topic="clicks",
    timestamp_field="ts",
    schema=[
        FieldSpec(name="user_id", dtype="string"),
        FieldSpec(name="amount", dtype="float64"),
        FieldSpec(name="ts", dtype="timestamp"),
    ],
)
user_clicks = WindowedFeatureView(
    name="user_clicks",
    entities=["user"],
    source="clicks",
    step="1h",
    aggregations=[
        Aggregation(function="count", windows=["1h"]),
        Aggregation(function="sum", column="amount", windows=["1h"]),
        Aggregation(function="max", column="amount", windows=["1h"]),
    ],
    ttl="2h",
)
clicks_v1 = FeatureService(
    name="clicks_v1", features=["user_clicks:count_1h", "user_clicks:amount_max_1h"]
)
FEATURES = ["count_1h", "amount_sum_1h", "amount_max_1h"]


def apply_clicks(registry: Registry) -> ResolvedView:
    registry.apply(FeatureRepo.of(user, clicks, user_clicks, clicks_v1))
    return registry.get_view("user_clicks")


def publish_rows(
    settings: Settings,
    registry: Registry,
    view: ResolvedView,
    start: datetime,
    end: datetime,
    rows: list[dict],
) -> None:
    """Publish `rows` as the view's interval [start, end): staged, validated, published."""
    staged = stage_rows(settings, view, rows, start, end, new_run_id("compute"))
    validate_and_publish(settings, registry, staged)


def row(user_id: str, ts: datetime, count: int, total: float, top: float | None) -> dict:
    return {
        "user_id": user_id,
        "feature_ts": ts,
        "count_1h": count,
        "amount_sum_1h": total,
        "amount_max_1h": top,
    }
