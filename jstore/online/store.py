"""The Redis online store: pipelined writes of packed values, version retirement, batched reads.

Writes go through `OnlineStore` (sync, used by the materializer); lookups through
`OnlineReader` (redis.asyncio, used by the API), which reads every requested view version and
its `__meta__` hash in one pipeline: one round trip per lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import redis
import redis.asyncio

from jstore.config import Settings
from jstore.model import ResolvedView
from jstore.online.layout import (
    Meta,
    drained,
    entity_parts,
    index_key,
    key_prefix,
    meta_key,
    packed_values,
)

CHUNK = 5000
"""Keys per Redis command (MSET, DEL, SADD): bounded request sizes, few commands."""


@dataclass(frozen=True)
class WriteCounts:
    written: int
    deleted: int
    max_computed_at: datetime | None


class OnlineStore:
    def __init__(self, settings: Settings, client: redis.Redis | None = None):
        self.project = settings.project
        self.client = client or redis.Redis.from_url(settings.redis_url)

    def close(self) -> None:
        self.client.close()

    def write_batch(self, view: ResolvedView, batch: pa.RecordBatch) -> WriteCounts:
        """Store each row's values under its entity key, or delete the key of a drained entity.

        Returns after Redis acknowledged every command of the batch (one pipeline).
        """
        if batch.num_rows == 0:
            return WriteCounts(0, 0, None)
        entities = entity_parts(
            [batch.column(k) for k in view.join_keys], [view.key_dtypes[k] for k in view.join_keys]
        )
        empty = drained(batch, view).to_pylist()
        values = packed_values(batch, view)
        prefix = key_prefix(self.project, view)
        index = index_key(self.project, view.name, view.version)
        rows = list(zip(entities, values, empty, strict=True))
        live = {prefix + e: v for e, v, gone in rows if not gone}
        dead = [e for e, _, gone in rows if gone]
        pipe = self.client.pipeline(transaction=False)
        for chunk in _chunks(list(live.items())):
            pipe.mset(dict(chunk))
        for chunk in _chunks([e for e, _, gone in rows if not gone]):
            pipe.sadd(index, *chunk)
        for chunk in _chunks(dead):
            pipe.delete(*[prefix + e for e in chunk])
            pipe.srem(index, *chunk)
        pipe.execute()
        computed = pc.max(batch.column("_computed_at")).as_py()
        return WriteCounts(len(live), len(dead), computed)

    def delete_entities(self, view: ResolvedView, keys: pa.Table) -> int:
        """Delete the keys of entities (join key columns) that have no row left; returns them."""
        if keys.num_rows == 0:
            return 0
        entities = entity_parts(
            [keys.column(k).combine_chunks() for k in view.join_keys],
            [view.key_dtypes[k] for k in view.join_keys],
        )
        prefix = key_prefix(self.project, view)
        index = index_key(self.project, view.name, view.version)
        pipe = self.client.pipeline(transaction=False)
        for chunk in _chunks(entities):
            pipe.delete(*[prefix + e for e in chunk])
            pipe.srem(index, *chunk)
        pipe.execute()
        return len(entities)

    def set_meta(self, view: ResolvedView, meta: Meta) -> None:
        self.client.hset(meta_key(self.project, view.name, view.version), mapping=meta.to_hash())

    def get_meta(self, view: ResolvedView) -> Meta | None:
        return Meta.from_hash(self.client.hgetall(meta_key(self.project, view.name, view.version)))

    def retire(self, name: str, version: int) -> int:
        """Delete every key of a view version by its index set; returns the keys deleted."""
        index = index_key(self.project, name, version)
        prefix = f"{self.project}:{name}:v{version}:"
        deleted = 0
        while True:
            members = self.client.spop(index, CHUNK)
            if not members:
                break
            deleted += self.client.delete(*[prefix.encode() + m for m in members])
        self.client.delete(index, meta_key(self.project, name, version))
        return deleted

    def read(self, view: ResolvedView, entities: Sequence[str]) -> list[bytes | None]:
        prefix = key_prefix(self.project, view)
        return self.client.mget([prefix + e for e in entities]) if entities else []


@dataclass(frozen=True)
class ViewRead:
    meta: Meta | None
    values: list[bytes | None]


class OnlineReader:
    """Async lookups for the API: all views of a request in one pipeline."""

    def __init__(self, settings: Settings, max_connections: int = 64):
        self.project = settings.project
        self.pool = redis.asyncio.ConnectionPool.from_url(
            settings.redis_url,
            max_connections=max_connections,
            socket_connect_timeout=1,
            socket_timeout=2,
        )
        self.client = redis.asyncio.Redis(connection_pool=self.pool)

    async def close(self) -> None:
        await self.client.aclose()
        await self.pool.aclose()

    async def read(self, requests: Sequence[tuple[ResolvedView, Sequence[str]]]) -> list[ViewRead]:
        """For each (view version, entity parts): its meta and the stored values, in order."""
        pipe = self.client.pipeline(transaction=False)
        for view, entities in requests:
            pipe.hgetall(meta_key(self.project, view.name, view.version))
            prefix = key_prefix(self.project, view)
            pipe.mget([prefix + e for e in entities])
        replies = await pipe.execute()
        return [
            ViewRead(Meta.from_hash(replies[2 * i]), replies[2 * i + 1])
            for i in range(len(requests))
        ]

    async def ping(self) -> bool:
        return bool(await self.client.ping())


def _chunks(items: list, size: int = CHUNK) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
