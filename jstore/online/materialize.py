"""Materialize: push what changed in the offline store since the last run to Redis.

For each current view version, under the view's materialize lock (one run at a time, see
jstore/offline/changes.py): `OfflineStore.pending_changes` gives, in one snapshot, the latest
row of every entity that a publish since the last run changed or removed rows of, and the
entities left without any row. Rows are written in pipelines (a drained entity's key deleted),
the keys of entities without rows deleted; only after Redis acknowledged everything does the
offline transaction commit, which consumes what was read, so a crash re-pushes (idempotently)
rather than skips. A first run (no watermark in the registry, or no meta hash in Redis: Redis
was never loaded or was flushed) loads every entity. Keys of the view's older versions are
deleted through their key sets, and so are the keys a JStore of online format 1 left for the
current version (its format 2 keys were just loaded whole: format 2 has its own meta hash).

One view's failure is not every view's: each view is its own run, a failure is recorded on
that run and reported in `MaterializeResult.failed`, and the next view goes on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from jstore import progress
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
    """Entity keys deleted: the entity drained (empty-window values) or has no row left."""
    retired_keys: int
    """Keys of older versions of the view removed (and of the current one in online format 1)."""
    watermark: datetime | None


class ViewFailed(BaseModel):
    view: str
    version: int
    run_id: str
    error: str
    """`<exception type>: <message>`, its first line (the run records the whole message)."""


class MaterializeResult(BaseModel):
    views: list[ViewMaterialized]
    failed: list[ViewFailed] = []

    @property
    def written(self) -> int:
        return sum(v.written for v in self.views)


class MaterializeFailed(RuntimeError):
    """Some views could not be materialized (the others were): one line per failed view."""

    def __init__(self, failed: list[ViewFailed]):
        super().__init__(
            "\n".join(f"materialize {f.view} v{f.version} failed: {f.error}" for f in failed)
        )
        self.failed = failed


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
    """Push the changes of `views` (default: every registered view) to Redis.

    A view that fails is in `failed` (its run recorded as failed); the others are pushed.
    Raises only for what concerns every view: an unknown view name, the registry.
    """
    if offline is None:
        from jstore.offline import OfflineStore

        offline = OfflineStore(settings)
    resolved = [registry.get_view(name) for name in views] if views else registry.list_views()
    online = OnlineStore(settings)
    result = MaterializeResult(views=[])
    try:
        for view in resolved:
            outcome = _materialize_view(registry, offline, online, view)
            if isinstance(outcome, ViewFailed):
                result.failed.append(outcome)
            else:
                result.views.append(outcome)
    finally:
        online.close()
    return result


def _server_unreachable(error: Exception) -> bool:
    """A store that is down or refuses the login fails every view alike: not one view's failure."""
    import psycopg
    import redis

    if isinstance(error, redis.ConnectionError | redis.exceptions.ClusterDownError):
        return True
    if isinstance(error, psycopg.OperationalError):
        # No SQLSTATE: the connection itself failed; class 08 (connection) and 28 (authorization).
        return error.sqlstate is None or error.sqlstate[:2] in ("08", "28")
    return False


def _materialize_view(
    registry: Registry, offline: OfflineStore, online: OnlineStore, view: ResolvedView
) -> ViewMaterialized | ViewFailed:
    """One view's `materialize` run; its failure is the view's own (`ViewFailed`) unless a
    store is unreachable, which stops every view."""
    record = RunRecord(
        run_id=new_run_id("materialize"),
        kind="materialize",
        subject=view.name,
        version=view.version,
    )
    try:
        with registry.run(record) as run:
            pushed = _push_changes(registry, offline, online, view, run.run_id)
            run.rows = pushed.written + pushed.deleted
            run.details = pushed.model_dump(include={"written", "deleted", "retired_keys"})
    except Exception as e:
        if _server_unreachable(e):
            raise
        error = f"{type(e).__name__}: {e}".strip().splitlines()[0]
        return ViewFailed(view=view.name, version=view.version, run_id=record.run_id, error=error)
    return pushed


def _push_changes(
    registry: Registry, offline: OfflineStore, online: OnlineStore, view: ResolvedView, run_id: str
) -> ViewMaterialized:
    """Push the view's pending changes under its materialize lock, then retire older keys."""
    with offline.materialize_lock(view):
        since = read_watermark(registry, view)
        everything = since is None or online.get_meta(view) is None
        synced_at = datetime.now(UTC)
        coverage = registry.coverage(view.name, view.version)
        written = deleted = 0
        watermark = since
        with (
            offline.pending_changes(view, everything) as pending,
            progress.task(f"materialize {view.name}", unit="rows"),
        ):
            for batch in pending.latest_rows():
                counts = online.write_batch(view, batch)
                progress.advance(batch.num_rows)
                written += counts.written
                deleted += counts.deleted
                if counts.max_computed_at and (
                    watermark is None or counts.max_computed_at > watermark
                ):
                    watermark = counts.max_computed_at
            deleted += online.delete_entities(view, pending.gone())
            online.set_meta(
                view,
                Meta(
                    coverage_end=coverage[-1][1] if coverage else None,
                    synced_at=synced_at,
                    watermark=watermark,
                ),
            )
            pending.consume()
        if watermark is not None and watermark != since:
            registry.set_watermark(watermark_key(view), watermark.isoformat())
    retired = online.drop_format1(view.name, view.version) + sum(
        online.retire(view.name, version)
        for version in registry.view_versions(view.name)
        if version < view.version
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
