"""The Redis online store: pipelined writes of packed values, version retirement, batched reads.

Writes go through `OnlineStore` (sync, used by the materializer); lookups through
`OnlineReader` (redis.asyncio, used by the API), which reads every requested view version and
its `__meta__` hash in one pipeline: one round trip per lookup (per node on a cluster).

On a single Redis (the default) a lookup reads each view version with one MGET. On Redis
Cluster (`Settings.redis_cluster`) every multi-key command must stay within one hash slot, so
writes are grouped per bucket (layout.py: a bucket's keys share a slot) and a lookup sends one
MGET per bucket it touches; the cluster pipeline sends each node its commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from jstore.config import Settings
from jstore.model import ResolvedView
from jstore.online.layout import (
    BUCKETS,
    Meta,
    bucket,
    bucket_prefix,
    drained,
    entity_parts,
    format1_keys,
    index_key,
    meta_key,
    packed_values,
    value_keys,
)

CHUNK = 5000
"""Keys per Redis command (MSET, DEL, SADD): bounded request sizes, few commands."""


@dataclass(frozen=True)
class WriteCounts:
    written: int
    deleted: int
    max_computed_at: datetime | None


def connect(settings: Settings) -> redis.Redis | redis.cluster.RedisCluster:
    """A client of the online store: `settings.redis_url` is any node of a cluster."""
    if not settings.redis_cluster:
        return redis.Redis.from_url(settings.redis_url)
    try:
        return redis.cluster.RedisCluster.from_url(settings.redis_url)
    except redis.exceptions.RedisClusterException as e:
        # No node answered as a cluster node (down, or a single Redis): the connection error
        # that the CLI and the materialize DAG report in one line, with the node's own reason.
        raise redis.ConnectionError(str(e).rpartition("reachable node: ")[2]) from e


class OnlineStore:
    def __init__(
        self,
        settings: Settings,
        client: redis.Redis | redis.cluster.RedisCluster | None = None,
    ):
        self.project = settings.project
        self.client = client or connect(settings)

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
        live: list[dict[str, str]] = [{} for _ in range(BUCKETS)]
        dead: list[list[str]] = [[] for _ in range(BUCKETS)]
        for entity, value, gone in zip(entities, values, empty, strict=True):
            if gone:
                dead[bucket(entity)].append(entity)
            else:
                live[bucket(entity)][entity] = value
        pipe = self.client.pipeline(transaction=False)
        for number in range(BUCKETS):
            prefix = bucket_prefix(self.project, view.name, view.version, number)
            index = index_key(self.project, view.name, view.version, number)
            for chunk in _chunks(list(live[number].items())):
                pipe.execute_command("MSET", *[x for e, v in chunk for x in (prefix + e, v)])
                pipe.sadd(index, *[e for e, _ in chunk])
            for chunk in _chunks(dead[number]):
                pipe.execute_command("DEL", *[prefix + e for e in chunk])
                pipe.srem(index, *chunk)
        pipe.execute()
        computed = pc.max(batch.column("_computed_at")).as_py()
        return WriteCounts(sum(map(len, live)), sum(map(len, dead)), computed)

    def delete_entities(self, view: ResolvedView, keys: pa.Table) -> int:
        """Delete the keys of entities (join key columns) that have no row left; returns them."""
        if keys.num_rows == 0:
            return 0
        entities = entity_parts(
            [keys.column(k).combine_chunks() for k in view.join_keys],
            [view.key_dtypes[k] for k in view.join_keys],
        )
        by_bucket: list[list[str]] = [[] for _ in range(BUCKETS)]
        for entity in entities:
            by_bucket[bucket(entity)].append(entity)
        pipe = self.client.pipeline(transaction=False)
        for number, bucket_entities in enumerate(by_bucket):
            prefix = bucket_prefix(self.project, view.name, view.version, number)
            index = index_key(self.project, view.name, view.version, number)
            for chunk in _chunks(bucket_entities):
                pipe.execute_command("DEL", *[prefix + e for e in chunk])
                pipe.srem(index, *chunk)
        pipe.execute()
        return len(entities)

    def set_meta(self, view: ResolvedView, meta: Meta) -> None:
        self.client.hset(meta_key(self.project, view.name, view.version), mapping=meta.to_hash())

    def get_meta(self, view: ResolvedView) -> Meta | None:
        return Meta.from_hash(self.client.hgetall(meta_key(self.project, view.name, view.version)))

    def retire(self, name: str, version: int) -> int:
        """Delete every key of a view version by its key sets; returns the value keys deleted.

        Each round pops up to `CHUNK` members of every bucket's set in one pipeline, then deletes
        their keys in another (a set and its keys share a slot); a set is gone once popped empty.
        """
        prefixes = [bucket_prefix(self.project, name, version, b) for b in range(BUCKETS)]
        pending = list(range(BUCKETS))
        deleted = 0
        while pending:
            pipe = self.client.pipeline(transaction=False)
            for number in pending:
                pipe.spop(index_key(self.project, name, version, number), CHUNK)
            popped = dict(zip(pending, pipe.execute(), strict=True))
            pending = [number for number, members in popped.items() if members]
            pipe = self.client.pipeline(transaction=False)
            for number in pending:
                prefix = prefixes[number].encode()
                pipe.execute_command("DEL", *[prefix + m for m in popped[number]])
            deleted += sum(pipe.execute())
        self.client.delete(meta_key(self.project, name, version))
        return deleted + self.drop_format1(name, version)

    def drop_format1(self, name: str, version: int) -> int:
        """Delete the keys a JStore of format 1 wrote for a view version; returns the value keys.

        The keys of its set span slots: on a cluster, `delete` splits them per slot.
        """
        prefix, index, meta = format1_keys(self.project, name, version)
        deleted = 0
        while members := self.client.spop(index, CHUNK):
            deleted += self.client.delete(*[prefix.encode() + m for m in members])
        self.client.delete(meta)
        return deleted

    def read(self, view: ResolvedView, entities: Sequence[str]) -> list[bytes | None]:
        if not entities:
            return []
        keys = value_keys(self.project, view, entities)
        if isinstance(self.client, redis.cluster.RedisCluster):
            return self.client.mget_nonatomic(keys)
        return self.client.mget(keys)


@dataclass(frozen=True)
class ViewRead:
    meta: Meta | None
    values: list[bytes | None]


class OnlineReader:
    """Async lookups for the API: all views of a request in one pipeline."""

    def __init__(self, settings: Settings, max_connections: int = 64):
        self.project = settings.project
        self.cluster = settings.redis_cluster
        options = {
            "max_connections": max_connections,
            "socket_connect_timeout": 1,
            "socket_timeout": 2,
        }
        self.pool: redis.asyncio.ConnectionPool | None = None
        self.client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
        if self.cluster:
            # max_connections is per node here
            self.client = redis.asyncio.cluster.RedisCluster.from_url(settings.redis_url, **options)
        else:
            self.pool = redis.asyncio.ConnectionPool.from_url(settings.redis_url, **options)
            self.client = redis.asyncio.Redis(connection_pool=self.pool)

    async def close(self) -> None:
        await self.client.aclose()
        if self.pool is not None:
            await self.pool.aclose()

    async def read(self, requests: Sequence[tuple[ResolvedView, Sequence[str]]]) -> list[ViewRead]:
        """For each (view version, entity parts): its meta and the stored values, in order.

        One MGET per view version on a single Redis; one per bucket touched on a cluster.
        """
        pipe = self.client.pipeline(transaction=False)
        groups: list[list[list[int]]] = []
        for view, entities in requests:
            pipe.hgetall(meta_key(self.project, view.name, view.version))
            keys = value_keys(self.project, view, entities)
            if not self.cluster:
                groups.append([list(range(len(keys)))])
                pipe.execute_command("MGET", *keys)
                continue
            by_bucket: dict[int, list[int]] = {}
            for i, entity in enumerate(entities):
                by_bucket.setdefault(bucket(entity), []).append(i)
            groups.append(list(by_bucket.values()))
            for positions in by_bucket.values():
                pipe.execute_command("MGET", *[keys[i] for i in positions])
        replies = iter(await pipe.execute())
        reads = []
        for (_, entities), view_groups in zip(requests, groups, strict=True):
            meta = Meta.from_hash(next(replies))
            if len(view_groups) == 1:  # every entity, in order
                reads.append(ViewRead(meta, next(replies)))
                continue
            values: list[bytes | None] = [None] * len(entities)
            for positions in view_groups:
                for i, value in zip(positions, next(replies), strict=True):
                    values[i] = value
            reads.append(ViewRead(meta, values))
        return reads

    async def ping(self) -> bool:
        return bool(await self.client.ping())


def _chunks(items: list, size: int = CHUNK) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
