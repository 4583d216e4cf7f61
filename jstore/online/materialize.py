"""Materialize: push what changed in the offline store since the last run to Redis.

For each current view version, the watermark `materialize:<view>__v<N>` in the registry holds
the largest `_computed_at` already pushed. `OfflineStore.changed_since` gives, for every entity
with a row computed after it, that entity's latest row; each batch is written in one pipeline,
and the watermark advances only after Redis acknowledged every batch of the view, so a crash
re-pushes (idempotently) rather than skips. A first run (no watermark) loads everything.
Keys of the view's older versions are deleted through their index sets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from jstore.config import Settings
from jstore.durations import parse_timestamp
from jstore.model import ResolvedView
from jstore.online.layout import Meta
from jstore.online.store import OnlineStore
from jstore.registry import Registry, RunRecord, new_run_id

if TYPE_CHECKING:
    from jstore.offline import OfflineStore


class ViewMaterialized(BaseModel):
    view: str
    version: int
    run_id: str
    written: int
    """Entity keys set."""
    deleted: int
    """Entity keys deleted because the entity drained (empty-window values)."""
    retired_keys: int
    """Keys of older versions of the view removed."""
    watermark: datetime | None


class MaterializeResult(BaseModel):
    views: list[ViewMaterialized]

    @property
    def written(self) -> int:
        return sum(v.written for v in self.views)


def watermark_key(view: ResolvedView) -> str:
    return f"materialize:{view.table}"


def read_watermark(registry: Registry, view: ResolvedView) -> datetime | None:
    """The watermark is kept as ISO text: MongoDB dates would cut `_computed_at` to milliseconds."""
    value = registry.get_watermark(watermark_key(view))
    return parse_timestamp(value) if value else None


def materialize(
    settings: Settings,
    registry: Registry,
    views: list[str] | None = None,
    offline: OfflineStore | None = None,
) -> MaterializeResult:
    """Push the changes of `views` (default: every registered view) to Redis."""
    if offline is None:
        from jstore.offline import OfflineStore

        offline = OfflineStore(settings)
    resolved = [registry.get_view(name) for name in views] if views else registry.list_views()
    online = OnlineStore(settings)
    try:
        return MaterializeResult(
            views=[_materialize_view(registry, offline, online, view) for view in resolved]
        )
    finally:
        online.close()


def _materialize_view(
    registry: Registry, offline: OfflineStore, online: OnlineStore, view: ResolvedView
) -> ViewMaterialized:
    run_id = registry.record_run(
        RunRecord(
            run_id=new_run_id("materialize"),
            kind="materialize",
            subject=view.name,
            version=view.version,
        )
    )
    try:
        since = read_watermark(registry, view)
        synced_at = datetime.now(UTC)
        coverage = registry.coverage(view.name, view.version)
        written = deleted = 0
        watermark = since
        for batch in offline.changed_since(view, since):
            counts = online.write_batch(view, batch)
            written += counts.written
            deleted += counts.deleted
            if counts.max_computed_at and (watermark is None or counts.max_computed_at > watermark):
                watermark = counts.max_computed_at
        online.set_meta(
            view,
            Meta(
                coverage_end=coverage[-1][1] if coverage else None,
                synced_at=synced_at,
                watermark=watermark,
            ),
        )
        if watermark != since:
            registry.set_watermark(watermark_key(view), watermark.isoformat())
        retired = sum(
            online.retire(view.name, version)
            for version in registry.view_versions(view.name)
            if version < view.version
        )
    except Exception as e:
        registry.finish_run(run_id, "failed", error=f"{type(e).__name__}: {e}")
        raise
    registry.finish_run(
        run_id,
        "success",
        rows=written + deleted,
        details={"written": written, "deleted": deleted, "retired_keys": retired},
    )
    return ViewMaterialized(
        view=view.name,
        version=view.version,
        run_id=run_id,
        written=written,
        deleted=deleted,
        retired_keys=retired,
        watermark=watermark,
    )
