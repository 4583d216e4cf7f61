"""Small views and staged runs for the offline-store tests (no Spark: Parquet written directly)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jstore.arrow_types import ARROW_TYPES
from jstore.config import Settings
from jstore.lake import staging_dir
from jstore.model import (
    Aggregation,
    Entity,
    EventSource,
    FieldSpec,
    ResolvedView,
    WindowedFeatureView,
)
from jstore.offline.tables import value_columns
from jstore.repo import FeatureRepo
from jstore.staging import StagedRun

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


def stage_rows(
    settings: Settings,
    view: ResolvedView,
    rows: list[dict],
    start: datetime,
    end: datetime,
    run_id: str,
    files: int = 1,
) -> StagedRun:
    """Write `rows` (dicts of join keys, feature_ts, features) as a complete staged run."""
    path = staging_dir(settings, view.name, run_id)
    path.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [(k, ARROW_TYPES[view.key_dtypes[k]]) for k in view.join_keys]
        + [("feature_ts", ARROW_TYPES["timestamp"])]
        + [(f.name, ARROW_TYPES[f.dtype]) for f in view.features]
    )
    columns = value_columns(view)
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema=schema)
    size = -(-len(rows) // files) if rows else 0
    for i in range(files):
        pq.write_table(
            table.slice(i * size, size) if size else table, path / f"part-{i:05d}.parquet"
        )
    staged = StagedRun(
        view=view.name,
        version=view.version,
        run_id=run_id,
        start=start,
        end=end,
        rows=len(rows),
        path=path,
    )
    staged.write_manifest()
    return staged
