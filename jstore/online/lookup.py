"""Online lookups: feature values per entity with a status per value, in one Redis round trip.

Status of a view's features for a request (DESIGN.md "Freshness, not row age"):
- `missing`: the view version has no published coverage; values are null.
- `expired`: its coverage end lags now by more than the view's ttl; values are null (stale
  values are never answered as present).
- `fallback`: Redis is down, or the view was published after the materializer last read the
  offline store (Redis is behind); values come from `OfflineStore.latest_for_entities`.
- `present`: read from Redis; an entity without a key has the empty-window values.
The registry (views, coverage, the latest publish) is read through a short-lived cache, so a
warm lookup calls only Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import redis.exceptions
from anyio import to_thread

from jstore.config import Settings
from jstore.durations import iso, parse_timestamp
from jstore.model import DType, FeatureRef, FeatureSpec, ResolvedView
from jstore.online.layout import Meta, key_tuple_parts, request_keys, unpack
from jstore.online.store import OnlineReader
from jstore.registry import Registry

Status = Literal["present", "expired", "fallback", "missing"]
INT64 = (-(2**63), 2**63 - 1)
REDIS_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.RedisClusterException,  # e.g. no node of the cluster could be reached
)
CACHE_ENTRIES = 1024
MISS = object()
T = TypeVar("T")


class OfflineUnavailable(RuntimeError):
    """Redis could not answer and neither could the offline store."""


@dataclass(frozen=True)
class ViewState:
    coverage_end: datetime | None
    latest_publish: datetime | None
    """When the latest successful publish of this version finished."""


@dataclass(frozen=True)
class RequestedFeature:
    ref: str
    view: ResolvedView
    feature: FeatureSpec
    label: str
    """The view as named in the response's `feature_ts`: `view`, or `view@vN` when pinned."""


class RegistryCache:
    """Registry answers reused for `seconds` (errors are not cached)."""

    def __init__(self, registry: Registry, seconds: float):
        self.registry = registry
        self.seconds = seconds
        self._entries: dict[tuple, tuple[float, Any]] = {}

    def peek(self, key: tuple) -> Any:
        """The cached value, or MISS (no blocking call: safe on the event loop)."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else MISS

    def _get(self, key: tuple, load: Callable[[], T]) -> T:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        if len(self._entries) >= CACHE_ENTRIES:
            self._entries.clear()
        self._entries[key] = (now + self.seconds, value)
        return value

    @staticmethod
    def features_key(refs: Sequence[str], service: str | None) -> tuple:
        return ("features", tuple(refs), service)

    def features(self, refs: Sequence[str], service: str | None) -> list[RequestedFeature]:
        return self._get(self.features_key(refs, service), lambda: self._features(refs, service))

    def _features(self, refs: Sequence[str], service: str | None) -> list[RequestedFeature]:
        texts = list(self.registry.get_service(service).features) if service else list(refs)
        resolved = self.registry.resolve_refs(texts)
        requested = []
        for text, (view, spec) in zip(texts, resolved, strict=True):
            pinned = FeatureRef.parse(text).version is not None
            label = f"{view.name}@v{view.version}" if pinned else view.name
            requested.append(RequestedFeature(text, view, spec, label))
        return requested

    @staticmethod
    def state_key(view: ResolvedView) -> tuple:
        return ("state", view.table)

    def state(self, view: ResolvedView) -> ViewState:
        return self._get(self.state_key(view), lambda: self._state(view))

    def _state(self, view: ResolvedView) -> ViewState:
        coverage = self.registry.coverage(view.name, view.version)
        publishes = self.registry.list_runs(
            kind="publish", subject=view.name, status="success", limit=20
        )
        latest = next((r.finished_at for r in publishes if r.version == view.version), None)
        return ViewState(coverage[-1][1] if coverage else None, latest)


@dataclass
class LookupResult:
    body: dict[str, Any]
    """The `/v1/online` response."""
    hits: int = 0
    misses: int = 0
    fallbacks: int = 0
    lag_seconds: dict[str, float] = field(default_factory=dict)
    """Per view label: how far its published coverage end lags now."""


class OnlineLookup:
    def __init__(self, settings: Settings, registry: Registry, reader: OnlineReader):
        self.settings = settings
        self.cache = RegistryCache(registry, settings.api_registry_cache_seconds)
        self.reader = reader

    async def lookup(
        self, refs: Sequence[str], service: str | None, entities: Sequence[dict[str, Any]]
    ) -> LookupResult:
        """Raises DefinitionError / NotFound for unknown references, ValueError for bad keys."""
        requested = self.cache.peek(self.cache.features_key(refs, service))
        if requested is MISS:
            requested = await to_thread.run_sync(self.cache.features, refs, service)
        views: dict[str, ResolvedView] = {}
        for item in requested:
            views.setdefault(item.label, item.view)
        keys = {label: entity_keys(view, entities) for label, view in views.items()}
        parts = {label: key_tuple_parts(views[label], keys[label]) for label in views}
        states = {}
        for label, view in views.items():
            states[label] = self.cache.peek(self.cache.state_key(view))
            if states[label] is MISS:
                states[label] = await to_thread.run_sync(self.cache.state, view)
        try:
            reads = await self.reader.read([(views[label], parts[label]) for label in views])
            redis_reads = dict(zip(views, reads, strict=True))
        except REDIS_DOWN:
            redis_reads = {}

        now = datetime.now(UTC)
        result = LookupResult(body={})
        columns: dict[str, tuple[Status, list[list[Any] | None]]] = {}
        for label, view in views.items():
            state = states[label]
            if state.coverage_end is not None:
                result.lag_seconds[label] = (now - state.coverage_end).total_seconds()
            if state.coverage_end is None:
                columns[label] = ("missing", [None] * len(entities))
            elif view.definition.ttl is not None and now - state.coverage_end > view.definition.ttl:
                columns[label] = ("expired", [None] * len(entities))
            elif label in redis_reads and not _behind(redis_reads[label].meta, state):
                values = redis_reads[label].values
                result.hits += sum(v is not None for v in values)
                result.misses += sum(v is None for v in values)
                columns[label] = ("present", unpack(values))
            else:
                result.fallbacks += len(entities)
                rows = await to_thread.run_sync(self._offline_rows, view, keys[label])
                columns[label] = ("fallback", rows)
        result.body = _response(requested, entities, columns)
        return result

    def _offline_rows(self, view: ResolvedView, keys: list[tuple]) -> list[list[Any] | None]:
        from jstore.offline import OfflineStore

        try:
            with OfflineStore(self.settings) as store:
                found = store.latest_for_entities(view, keys)
        except Exception as e:
            raise OfflineUnavailable(f"offline store: {type(e).__name__}: {e}") from e
        rows: list[list[Any] | None] = []
        for key in keys:
            row = found.get(key)
            rows.append(
                None
                if row is None
                else [iso(row["feature_ts"])] + [_wire(row[f.name]) for f in view.features]
            )
        return rows


def entity_keys(
    view: ResolvedView, entities: Sequence[dict[str, Any]], where: str = "entities"
) -> list[tuple]:
    """Typed key tuples of request entities (`layout.request_keys`), checked to fit every store:
    64-bit integers, finite floats, text without NUL (PostgreSQL text cannot hold it) or lone
    surrogates, timestamps as ISO-8601 text of a time Python can represent in UTC.

    Raises ValueError naming `<where>.<i>.<key>`.
    """
    for key in view.join_keys:
        for i, entity in enumerate(entities):
            why = _unfit_key(entity.get(key), view.key_dtypes[key])
            if why is not None:
                raise ValueError(f"{where}.{i}.{key}: {why}")
    try:
        keys = request_keys(view, entities)
    except ValueError as e:
        raise ValueError(where + str(e).removeprefix("entities")) from None
    for i, key_tuple in enumerate(keys):
        for key, value in zip(view.join_keys, key_tuple, strict=True):
            why = _unfit_key(value, view.key_dtypes[key])
            if why is not None:
                raise ValueError(f"{where}.{i}.{key}: {why}")
    return keys


def _unfit_key(value: Any, dtype: DType) -> str | None:
    """Why a key value (as sent, or as typed by `request_keys`) fits no store; None if it fits.

    Values `request_keys` refuses with its own message (wrong types) pass here.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        return "an integer outside the 64-bit range"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN and infinity are not key values"
    if dtype == "timestamp" and not isinstance(value, str | datetime):
        return f"{type(value).__name__} is not ISO-8601 text like 2024-05-01T10:00:00Z"
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        return "text with a NUL character cannot be a key"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "text with a lone surrogate is not valid Unicode"
    if dtype == "timestamp":
        try:
            parse_timestamp(value)
        except OverflowError:
            return f"{value!r} is outside the range of timestamps"
        except ValueError:
            return None
    return None


def _behind(meta: Meta | None, state: ViewState) -> bool:
    """Redis lacks a publish the registry knows of (or was never materialized)."""
    if meta is None:
        return True
    if state.coverage_end is not None and (
        meta.coverage_end is None or meta.coverage_end < state.coverage_end
    ):
        return True
    return state.latest_publish is not None and meta.synced_at < state.latest_publish


def _response(
    requested: list[RequestedFeature],
    entities: Sequence[dict[str, Any]],
    columns: dict[str, tuple[Status, list[list[Any] | None]]],
) -> dict[str, Any]:
    """The body: per entity, values (and statuses) of every requested feature, refs in order."""
    refs = [item.ref for item in requested]
    groups: dict[str, list[RequestedFeature]] = {}
    for item in requested:
        groups.setdefault(item.label, []).append(item)
    plans = []
    for label, items in groups.items():
        names = [f.name for f in items[0].view.features]
        status = columns[label][0]
        plans.append(
            (
                label,
                [item.ref for item in items],
                [1 + names.index(item.feature.name) for item in items],
                {
                    item.ref: None if status in ("missing", "expired") else item.feature.empty_value
                    for item in items
                },
            )
        )
    statuses = {item.ref: columns[item.label][0] for item in requested}
    in_order = [ref for _, group_refs, _, _ in plans for ref in group_refs] == refs
    rows = []
    for i, entity in enumerate(entities):
        values: dict[str, Any] = {}
        feature_ts: dict[str, str | None] = {}
        for label, group_refs, positions, empty in plans:
            row = columns[label][1][i]
            if row is None:
                values.update(empty)
                feature_ts[label] = None
            else:
                values.update(zip(group_refs, [row[p] for p in positions], strict=True))
                feature_ts[label] = row[0]
        if not in_order:
            values = {ref: values[ref] for ref in refs}
        rows.append(
            {"entity": entity, "values": values, "statuses": statuses, "feature_ts": feature_ts}
        )
    return {"features": refs, "rows": rows}


def _wire(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value
