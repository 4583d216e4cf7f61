"""Materialize: offline rows -> Redis keys, incrementally from the registry watermark."""

from __future__ import annotations

import redis

from jstore.model import Aggregation
from jstore.online import OnlineStore, materialize
from jstore.online.layout import BUCKETS, index_key, unpack, value_keys
from jstore.repo import FeatureRepo
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


def stored(settings, view) -> dict[str, list]:
    """Every entity in the view version's key sets, with its stored value (Redis or a cluster)."""
    online = OnlineStore(settings)
    pipe = online.client.pipeline(transaction=False)
    for number in range(BUCKETS):
        pipe.smembers(index_key(settings.project, view.name, view.version, number))
    entities = sorted(m.decode() for members in pipe.execute() for m in members)
    values = dict(zip(entities, unpack(online.read(view, entities)), strict=True))
    online.close()
    return values


def test_first_run_loads_the_latest_row_of_every_entity(settings, registry, offline):
    view = apply_clicks(registry)
    publish_rows(
        settings,
        registry,
        view,
        T0,
        T0 + 2 * HOUR,
        [
            row("u1", T0, 1, 5.0, 5.0),
            row("u1", T0 + HOUR, 2, 7.5, 5.0),
            row("u2", T0, 1, 3.0, 3.0),
        ],
    )

    result = materialize(settings, registry, ["user_clicks"], offline=offline)

    assert [(v.view, v.version, v.written, v.deleted) for v in result.views] == [
        ("user_clicks", 1, 2, 0)
    ]
    assert stored(settings, view) == {
        "u1": ["2024-05-01T11:00:00Z", 2, 7.5, 5.0],
        "u2": ["2024-05-01T10:00:00Z", 1, 3.0, 3.0],
    }
    p = settings.project
    r = redis.Redis.from_url(settings.redis_url)
    assert sorted(k.decode() for k in r.keys(f"{p}:*")) == [
        f"{p}:__keys__:{{user_clicks:v1:12}}",
        f"{p}:__keys__:{{user_clicks:v1:6}}",
        f"{p}:__meta__:{{user_clicks:v1}}",
        f"{p}:{{user_clicks:v1:12}}:u2",
        f"{p}:{{user_clicks:v1:6}}:u1",
    ]
    r.close()
    run = registry.get_run(result.views[0].run_id)
    assert (run.kind, run.status, run.rows, run.details["written"]) == (
        "materialize",
        "success",
        2,
        2,
    )


def test_later_runs_push_only_what_changed_and_repeating_is_idempotent(settings, registry, offline):
    view = apply_clicks(registry)
    publish_rows(
        settings,
        registry,
        view,
        T0,
        T0 + HOUR,
        [row("u1", T0, 1, 5.0, 5.0), row("u2", T0, 1, 3.0, 3.0)],
    )
    first = materialize(settings, registry, offline=offline).views[0]
    again = materialize(settings, registry, offline=offline).views[0]
    assert (again.written, again.deleted, again.watermark) == (0, 0, first.watermark)

    publish_rows(
        settings, registry, view, T0 + HOUR, T0 + 2 * HOUR, [row("u2", T0 + HOUR, 2, 4.0, 3.0)]
    )
    later = materialize(settings, registry, offline=offline).views[0]

    assert (later.written, later.deleted) == (1, 0)
    assert later.watermark > first.watermark
    assert registry.get_watermark("materialize:user_clicks__v1") == later.watermark.isoformat()
    assert stored(settings, view) == {
        "u1": ["2024-05-01T10:00:00Z", 1, 5.0, 5.0],
        "u2": ["2024-05-01T11:00:00Z", 2, 4.0, 3.0],
    }
    meta = OnlineStore(settings).get_meta(view)
    assert meta.coverage_end == T0 + 2 * HOUR
    assert meta.watermark == later.watermark


def test_a_drained_entity_loses_its_key(settings, registry, offline):
    view = apply_clicks(registry)
    publish_rows(
        settings,
        registry,
        view,
        T0,
        T0 + HOUR,
        [row("u1", T0, 1, 5.0, 5.0), row("u2", T0, 1, 3.0, 3.0)],
    )
    materialize(settings, registry, offline=offline)

    publish_rows(
        settings, registry, view, T0 + HOUR, T0 + 2 * HOUR, [row("u1", T0 + HOUR, 0, 0.0, None)]
    )
    result = materialize(settings, registry, offline=offline).views[0]

    assert (result.written, result.deleted) == (0, 1)
    assert stored(settings, view) == {"u2": ["2024-05-01T10:00:00Z", 1, 3.0, 3.0]}
    r = redis.Redis.from_url(settings.redis_url)
    assert r.exists(*value_keys(settings.project, view, ["u1"])) == 0
    r.close()


def test_keys_of_a_retired_version_are_removed(settings, registry, offline):
    v1 = apply_clicks(registry)
    publish_rows(settings, registry, v1, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])
    materialize(settings, registry, offline=offline)
    assert stored(settings, v1) == {"u1": ["2024-05-01T10:00:00Z", 1, 5.0, 5.0]}

    wider = user_clicks.model_copy(
        update={"aggregations": [Aggregation(function="count", windows=["1h", "2h"])]}
    )
    registry.apply(FeatureRepo.of(user, clicks, wider))
    v2 = registry.get_view("user_clicks")
    assert v2.version == 2
    publish_rows(
        settings,
        registry,
        v2,
        T0,
        T0 + HOUR,
        [{"user_id": "u1", "feature_ts": T0, "count_1h": 1, "count_2h": 1}],
    )
    result = materialize(settings, registry, offline=offline).views[0]

    assert (result.version, result.written, result.retired_keys) == (2, 1, 1)
    p = settings.project
    r = redis.Redis.from_url(settings.redis_url)
    assert sorted(k.decode() for k in r.keys(f"{p}:*")) == [
        f"{p}:__keys__:{{user_clicks:v2:6}}",
        f"{p}:__meta__:{{user_clicks:v2}}",
        f"{p}:{{user_clicks:v2:6}}:u1",
    ]
    r.close()
    assert stored(settings, v2) == {"u1": ["2024-05-01T10:00:00Z", 1, 1]}


def test_keys_of_online_format_1_are_replaced_by_format_2(settings, registry, offline):
    """A JStore of format 1 left its keys, key set and meta hash: the next materialize loads the
    view whole in format 2 (its meta hash is not format 1's) and deletes format 1's keys."""
    view = apply_clicks(registry)
    publish_rows(settings, registry, view, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])
    materialize(settings, registry, offline=offline)
    p = settings.project
    r = redis.Redis.from_url(settings.redis_url)
    r.delete(*r.keys(f"{p}:*"))  # Redis as a JStore of format 1 left it
    r.set(f"{p}:user_clicks:v1:u1", '["2024-05-01T10:00:00Z",1,5.0,5.0]')
    r.set(f"{p}:user_clicks:v1:gone", '["2024-05-01T09:00:00Z",1,1.0,1.0]')
    r.sadd(f"{p}:__keys__:user_clicks:v1", "u1", "gone")
    r.hset(f"{p}:__meta__:user_clicks:v1", mapping={"synced_at": "2024-05-01T11:00:00+00:00"})

    result = materialize(settings, registry, offline=offline).views[0]

    assert (result.written, result.retired_keys) == (1, 2)
    assert sorted(k.decode() for k in r.keys(f"{p}:*")) == [
        f"{p}:__keys__:{{user_clicks:v1:6}}",
        f"{p}:__meta__:{{user_clicks:v1}}",
        f"{p}:{{user_clicks:v1:6}}:u1",
    ]
    r.close()
    assert stored(settings, view) == {"u1": ["2024-05-01T10:00:00Z", 1, 5.0, 5.0]}
