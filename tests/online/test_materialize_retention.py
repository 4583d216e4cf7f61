"""Retention that leaves an entity without rows reaches Redis: the next materialize deletes the
entity's key, and a lookup answers for it exactly as for an entity never seen."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from jstore.online import materialize
from jstore.online.lookup import OnlineLookup
from jstore.online.store import OnlineReader
from jstore.repo import FeatureRepo
from tests.online.online_helpers import (
    HOUR,
    T0,
    clicks,
    clicks_v1,
    publish_rows,
    row,
    user,
    user_clicks,
)
from tests.online.test_online_materialize import stored

REFS = ["user_clicks:count_1h", "user_clicks:amount_sum_1h", "user_clicks:amount_max_1h"]
JUNE = T0 + timedelta(days=31)  # 2024-06-01T10:00Z


def apply_view(registry, retention: timedelta | None):
    """user_clicks without a ttl (its 2024 rows are answered as present), with `retention`."""
    view = user_clicks.model_copy(update={"ttl": None, "retention": retention})
    registry.apply(FeatureRepo.of(user, clicks, view, clicks_v1))
    return registry.get_view("user_clicks")


def lookup(settings, registry, entities: list[dict]) -> list[dict]:
    async def read() -> list[dict]:
        reader = OnlineReader(settings)
        try:
            result = await OnlineLookup(settings, registry, reader).lookup(REFS, None, entities)
        finally:
            await reader.close()
        return result.body["rows"]

    return asyncio.run(read())


def test_an_entity_whose_rows_retention_dropped_reads_as_an_unknown_entity(
    settings, registry, offline
):
    view = apply_view(registry, retention=None)
    publish_rows(
        settings,
        registry,
        view,
        T0,
        T0 + HOUR,
        [row("u1", T0, 1, 5.0, 5.0), row("u2", T0, 2, 3.0, 2.0)],
    )
    publish_rows(settings, registry, view, JUNE, JUNE + HOUR, [row("u1", JUNE, 1, 4.0, 4.0)])
    materialize(settings, registry, offline=offline)
    assert stored(settings, view) == {
        "u1": ["2024-06-01T10:00:00Z", 1, 4.0, 4.0],
        "u2": ["2024-05-01T10:00:00Z", 2, 3.0, 2.0],
    }

    # The owner sets a retention of 30 days (metadata: same version); on July 2 May is past it.
    view = apply_view(registry, retention=timedelta(days=30))
    assert offline.drop_expired(view, now=JUNE + timedelta(days=31)) == 1
    result = materialize(settings, registry, offline=offline).views[0]

    assert (result.written, result.deleted) == (0, 1)  # u2 deleted; u1 has its June row
    assert stored(settings, view) == {"u1": ["2024-06-01T10:00:00Z", 1, 4.0, 4.0]}
    assert offline.latest_for_entities(view, [("u2",)]) == {}
    gone, unknown = lookup(settings, registry, [{"user_id": "u2"}, {"user_id": "nobody"}])
    assert gone == {**unknown, "entity": {"user_id": "u2"}}
    assert unknown == {
        "entity": {"user_id": "nobody"},
        "values": dict(zip(REFS, [0, 0, None], strict=True)),
        "statuses": dict.fromkeys(REFS, "present"),
        "feature_ts": {"user_clicks": None},
    }
