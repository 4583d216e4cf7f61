"""Shared by tests/online and tests/serving: a small view, and rows published to the offline store.

Rows are published through `jstore.pipeline.publish_staged` when the offline store exists; until
then `NaiveOffline` (a test oracle written straight in SQL) plays the offline store's part.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pyarrow as pa
from psycopg import sql

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
from jstore.online.layout import ARROW_TYPES
from jstore.registry import Registry
from jstore.repo import FeatureRepo

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


class NaiveOffline:
    """The offline store's reads as plain SQL: the oracle until jstore.offline lands."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def _conn(self) -> psycopg.Connection:
        return psycopg.connect(self.settings.postgres_dsn.get_secret_value(), autocommit=True)

    def _table(self, view: ResolvedView) -> sql.Composed:
        return sql.Identifier(self.settings.offline_schema, view.table)

    def insert(self, view: ResolvedView, rows: list[dict], computed_at: datetime) -> None:
        types = {"string": "text", "int64": "bigint", "float64": "double precision"}
        columns = [
            *(
                sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(types[view.key_dtypes[k]]))
                for k in view.join_keys
            ),
            sql.SQL("feature_ts timestamptz"),
            *(
                sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(types[f.dtype]))
                for f in view.features
            ),
            sql.SQL("_run_id text, _computed_at timestamptz"),
        ]
        names = [*view.join_keys, "feature_ts", *(f.name for f in view.features)]
        with self._conn() as conn:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(self.settings.offline_schema)
                )
            )
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                    self._table(view), sql.SQL(", ").join(columns)
                )
            )
            for row in rows:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} ({}, _run_id, _computed_at) VALUES ({}, 'r', %s)"
                    ).format(
                        self._table(view),
                        sql.SQL(", ").join(map(sql.Identifier, names)),
                        sql.SQL(", ").join(sql.Placeholder() * len(names)),
                    ),
                    [*(row.get(n) for n in names), computed_at],
                )

    def changed_since(self, view: ResolvedView, since: datetime | None) -> Iterator[pa.RecordBatch]:
        keys = sql.SQL(", ").join(map(sql.Identifier, view.join_keys))
        query = sql.SQL(
            "SELECT DISTINCT ON ({k}) * FROM {t} WHERE ({k}) IN "
            "(SELECT {k} FROM {t} WHERE _computed_at > %s) ORDER BY {k}, feature_ts DESC"
        ).format(k=keys, t=self._table(view))
        with self._conn() as conn:
            cur = conn.execute(query, [since or datetime(1970, 1, 1, tzinfo=UTC)])
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        types = {
            **{k: ARROW_TYPES[view.key_dtypes[k]] for k in view.join_keys},
            "feature_ts": ARROW_TYPES["timestamp"],
            **{f.name: ARROW_TYPES[f.dtype] for f in view.features},
            "_run_id": pa.string(),
            "_computed_at": ARROW_TYPES["timestamp"],
        }
        yield pa.RecordBatch.from_pydict(
            {n: pa.array([r[i] for r in rows], types[n]) for i, n in enumerate(names)}
        )

    def latest_for_entities(self, view: ResolvedView, keys: list[tuple]) -> dict[tuple, dict]:
        found = {}
        with self._conn() as conn:
            for key in keys:
                where = sql.SQL(" AND ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(k)) for k in view.join_keys
                )
                cur = conn.execute(
                    sql.SQL("SELECT * FROM {} WHERE {} ORDER BY feature_ts DESC LIMIT 1").format(
                        self._table(view), where
                    ),
                    list(key),
                )
                row = cur.fetchone()
                if row:
                    names = [d.name for d in cur.description]
                    doc = dict(zip(names, row, strict=True))
                    found[key] = {"feature_ts": doc["feature_ts"]} | {
                        f.name: doc[f.name] for f in view.features
                    }
        return found


def publish_rows(
    settings: Settings,
    registry: Registry,
    view: ResolvedView,
    start: datetime,
    end: datetime,
    rows: list[dict],
) -> None:
    """Publish `rows` as the view's interval [start, end) and record the coverage."""
    NaiveOffline(settings).insert(view, rows, datetime.now(UTC))
    registry.add_coverage(view.name, view.version, start, end)


def row(user_id: str, ts: datetime, count: int, total: float, top: float | None) -> dict:
    return {
        "user_id": user_id,
        "feature_ts": ts,
        "count_1h": count,
        "amount_sum_1h": total,
        "amount_max_1h": top,
    }
