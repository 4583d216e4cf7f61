"""Small views for the offline-store tests (staged runs: tests/factories.py `stage_rows`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jstore.model import (
    Aggregation,
    Entity,
    EventSource,
    FieldSpec,
    ResolvedView,
    WindowedFeatureView,
)
from jstore.offline import OfflineStore
from jstore.repo import FeatureRepo

T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)

account = Entity(name="account", join_keys=["bank", "account_id"])
card = Entity(name="card", join_keys=["card_id"])
payments = EventSource(
    name="payments",
    topic="payments",
    timestamp_field="ts",
    schema=[
        FieldSpec(name="bank", dtype="string"),
        FieldSpec(name="account_id", dtype="int64"),
        FieldSpec(name="card_id", dtype="string"),
        FieldSpec(name="amount", dtype="float64"),
        FieldSpec(name="ts", dtype="timestamp"),
    ],
)
account_spend = WindowedFeatureView(
    name="account_spend",
    entities=["account"],
    source="payments",
    step="1h",
    aggregations=[
        Aggregation(function="count", windows=["1h"]),
        Aggregation(function="sum", column="amount", windows=["1h"]),
        Aggregation(function="max", column="amount", windows=["1h"]),
    ],
)
card_daily = WindowedFeatureView(
    name="card_daily",
    entities=["card"],
    source="payments",
    step="1d",
    aggregations=[Aggregation(function="count", windows=["1d"])],
)
SMALL_REPO = FeatureRepo.of(account, card, payments, account_spend, card_daily)


@pytest.fixture(scope="session")
def spend_view() -> ResolvedView:
    """Keys (bank: string, account_id: int64); count_1h, amount_sum_1h, amount_max_1h."""
    return SMALL_REPO.resolve("account_spend", 1)


@pytest.fixture(scope="session")
def card_view() -> ResolvedView:
    """Key card_id; step 1d; count_1d."""
    return SMALL_REPO.resolve("card_daily", 1)


@pytest.fixture
def store(settings):
    """An offline store on the test's own schema (a module may override it: a layout's own)."""
    with OfflineStore(settings) as s:
        yield s
