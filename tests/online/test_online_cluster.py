"""The online store on a real 3-node Redis Cluster (`redis_cluster`, tests/online/redis_cluster.py):
materialize, lookups through the API, deletions and retirement, with keys spread over every node.

Redis Cluster refuses a command whose keys hash to different slots (CROSSSLOT); format 2's hash
tags keep every multi-key command within one bucket's slot.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
import redis.cluster
from fastapi.testclient import TestClient

from jstore.config import Settings
from jstore.durations import floor_to_step, iso
from jstore.model import Aggregation, WindowedFeatureView
from jstore.online import OnlineStore, materialize
from jstore.online.layout import BUCKETS, value_keys
from jstore.registry import Registry
from jstore.repo import FeatureRepo
from serving.app import create_app
from tests.online.online_helpers import (
    HOUR,
    T0,
    apply_clicks,
    clicks,
    publish_rows,
    row,
    user,
    user_clicks,
)
from tests.online.redis_cluster import LocalCluster, start_cluster
from tests.online.test_online_materialize import stored

ENTITIES = 300
"""Enough entities for every bucket of a view version: its keys land on all three nodes."""

user_spend = WindowedFeatureView(
    name="user_spend",
    entities=["user"],
    source="clicks",
    step="1h",
    aggregations=[Aggregation(function="sum", column="amount", windows=["1h"])],
    ttl="2h",
)


@pytest.fixture
def on_cluster(settings: Settings, redis_cluster: LocalCluster) -> Iterator[Settings]:
    """The test's settings with the online store on the cluster; its keys deleted afterwards."""
    yield settings.model_copy(
        update={
            "redis_url": redis_cluster.url,
            "redis_cluster": True,
            "api_auth_disabled": True,
            "api_registry_cache_seconds": 0.0,
        }
    )
    client = redis_cluster.client()
    keys = list(client.scan_iter(match=f"{settings.project}:*", target_nodes="primaries"))
    if keys:
        client.delete(*keys)
    client.close()


def keys_by_node(cluster: redis.cluster.RedisCluster, project: str) -> dict[str, list[str]]:
    """Every key of the project, per node that holds it."""
    found: dict[str, list[str]] = {}
    for node in cluster.get_primaries():
        client = cluster.get_redis_connection(node)
        found[node.name] = sorted(k.decode() for k in client.scan_iter(match=f"{project}:*"))
    return found


def test_materialized_views_are_looked_up_through_the_api_on_a_cluster(
    now_step: datetime, on_cluster: Settings, registry: Registry, redis_cluster: LocalCluster
):
    registry.apply(FeatureRepo.of(user, clicks, user_clicks, user_spend))
    clicks_view, spend_view = registry.get_view("user_clicks"), registry.get_view("user_spend")
    start = floor_to_step(now_step - 2 * HOUR, clicks_view.definition.checkpoint_period)
    ts = now_step - HOUR
    users = [f"u{i}" for i in range(ENTITIES)]
    publish_rows(
        on_cluster,
        registry,
        clicks_view,
        start,
        now_step,
        [row(u, ts, i + 1, 2.0 * i, float(i)) for i, u in enumerate(users)],
    )
    publish_rows(
        on_cluster,
        registry,
        spend_view,
        start,
        now_step,
        [{"user_id": u, "feature_ts": ts, "amount_sum_1h": i + 0.5} for i, u in enumerate(users)],
    )

    result = materialize(on_cluster, registry)

    assert sorted((v.view, v.written) for v in result.views) == [
        ("user_clicks", ENTITIES),
        ("user_spend", ENTITIES),
    ]
    assert stored(on_cluster, clicks_view) == {
        u: [iso(ts), i + 1, 2.0 * i, float(i)] for i, u in enumerate(users)
    }
    cluster = redis_cluster.client()
    per_node = keys_by_node(cluster, on_cluster.project)
    cluster.close()
    assert len(per_node) == 3
    assert all(any(":{user_clicks:v1:" in k for k in keys) for keys in per_node.values())
    assert sum(map(len, per_node.values())) == 2 * (ENTITIES + BUCKETS + 1)

    refs = ["user_clicks:count_1h", "user_spend:amount_sum_1h", "user_clicks:amount_max_1h"]
    asked = [*users, "nobody"]
    with TestClient(create_app(on_cluster)) as client:
        response = client.post(
            "/v1/online", json={"features": refs, "entities": [{"user_id": u} for u in asked]}
        )
        ready = client.get("/ready")

    assert response.status_code == 200
    rows = response.json()["rows"]
    assert [r["entity"]["user_id"] for r in rows] == asked
    assert [r["values"] for r in rows] == [
        dict(zip(refs, [i + 1, i + 0.5, float(i)], strict=True)) for i in range(ENTITIES)
    ] + [dict(zip(refs, [0, 0, None], strict=True))]
    assert {s for r in rows for s in r["statuses"].values()} == {"present"}
    assert rows[0]["feature_ts"] == {"user_clicks": iso(ts), "user_spend": iso(ts)}
    assert rows[-1]["feature_ts"] == {"user_clicks": None, "user_spend": None}
    assert ready.json()["servers"]["redis"] == {"ok": True, "error": None}


def test_drained_and_gone_entities_lose_their_keys_on_a_cluster(
    on_cluster: Settings, registry: Registry, redis_cluster: LocalCluster, offline
):
    view = apply_clicks(registry)
    publish_rows(
        on_cluster,
        registry,
        view,
        T0,
        T0 + HOUR,
        [row("u1", T0, 1, 5.0, 5.0), row("u2", T0, 1, 3.0, 3.0), row("u3", T0, 1, 1.0, 1.0)],
    )
    publish_rows(
        on_cluster,
        registry,
        view,
        T0 + HOUR,
        T0 + 2 * HOUR,
        [row("u2", T0 + HOUR, 2, 4.0, 3.0), row("u3", T0 + HOUR, 2, 2.0, 1.0)],
    )
    materialize(on_cluster, registry, offline=offline)

    # The second hour again: u2 drained (its empty-window values), u3 has no row there any more.
    publish_rows(
        on_cluster, registry, view, T0 + HOUR, T0 + 2 * HOUR, [row("u2", T0 + HOUR, 0, 0.0, None)]
    )
    result = materialize(on_cluster, registry, offline=offline).views[0]

    assert (result.written, result.deleted) == (1, 1)
    assert stored(on_cluster, view) == {
        "u1": ["2024-05-01T10:00:00Z", 1, 5.0, 5.0],
        "u3": ["2024-05-01T10:00:00Z", 1, 1.0, 1.0],
    }
    cluster = redis_cluster.client()
    assert cluster.exists(*value_keys(on_cluster.project, view, ["u2"])) == 0
    cluster.close()


def test_a_retired_version_leaves_no_key_on_any_node(
    on_cluster: Settings, registry: Registry, redis_cluster: LocalCluster, offline
):
    v1 = apply_clicks(registry)
    users = [f"u{i}" for i in range(ENTITIES)]
    publish_rows(on_cluster, registry, v1, T0, T0 + HOUR, [row(u, T0, 1, 5.0, 5.0) for u in users])
    materialize(on_cluster, registry, offline=offline)
    wider = user_clicks.model_copy(
        update={"aggregations": [Aggregation(function="count", windows=["1h", "2h"])]}
    )
    registry.apply(FeatureRepo.of(user, clicks, wider))
    v2 = registry.get_view("user_clicks")
    publish_rows(
        on_cluster,
        registry,
        v2,
        T0,
        T0 + HOUR,
        [{"user_id": "u1", "feature_ts": T0, "count_1h": 1, "count_2h": 1}],
    )

    result = materialize(on_cluster, registry, offline=offline).views[0]

    assert (result.version, result.written, result.retired_keys) == (2, 1, ENTITIES)
    cluster = redis_cluster.client()
    keys = sorted(
        k for node_keys in keys_by_node(cluster, on_cluster.project).values() for k in node_keys
    )
    cluster.close()
    p = on_cluster.project
    assert keys == [
        f"{p}:__keys__:{{user_clicks:v2:6}}",
        f"{p}:__meta__:{{user_clicks:v2}}",
        f"{p}:{{user_clicks:v2:6}}:u1",
    ]


def test_a_cluster_that_stops_is_answered_from_the_offline_store(
    now_step: datetime, settings: Settings, registry: Registry, tmp_path: Path
):
    own = start_cluster(tmp_path / "cluster")
    try:
        on_own = settings.model_copy(
            update={"redis_url": own.url, "redis_cluster": True, "api_auth_disabled": True}
        )
        view = apply_clicks(registry)
        ts = now_step - HOUR
        publish_rows(on_own, registry, view, ts, now_step, [row("u1", ts, 2, 7.5, 5.0)])
        materialize(on_own, registry)
        body = {"features": ["user_clicks:count_1h"], "entities": [{"user_id": "u1"}]}
        with TestClient(create_app(on_own)) as client:
            before = client.post("/v1/online", json=body).json()["rows"][0]
            own.stop()
            after = client.post("/v1/online", json=body).json()["rows"][0]
    finally:
        own.stop()

    assert (before["values"], before["statuses"]) == (
        {"user_clicks:count_1h": 2},
        {"user_clicks:count_1h": "present"},
    )
    assert (after["values"], after["statuses"]) == (
        {"user_clicks:count_1h": 2},
        {"user_clicks:count_1h": "fallback"},
    )


def test_a_single_redis_named_as_a_cluster_is_refused_with_its_reason(settings: Settings):
    with pytest.raises(redis.ConnectionError, match=r"^Cluster mode is not enabled on this node$"):
        OnlineStore(settings.model_copy(update={"redis_cluster": True}))
