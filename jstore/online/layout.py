"""The Redis layout of the online store (format 2): key names and packed values.

Written down in docs/online_store_format.md.

Invariants:
- One key per (view version, entity): `<project>:{<view>:v<N>:<b>}:<entity>`, where `<entity>`
  is the join key values in the view's key order, each written as text (`%` -> `%25`, `|` ->
  `%7C`) and joined with `|`, and `<b>` its bucket: CRC-32 of the entity part's UTF-8 bytes
  modulo `BUCKETS`. The braces are a Redis Cluster hash tag: the keys of one bucket share a
  slot, so a lookup reads them with one MGET per bucket and a write sets them with one MSET per
  bucket, while a view version still spreads over `BUCKETS` slots (nodes) of a cluster.
- The value is one JSON array `[feature_ts, f1, …, fn]`, features in `ResolvedView.features`
  order (fixed per version), timestamps as ISO-8601 UTC text. One `json.loads` per key is the
  whole decoding cost of a lookup.
- `<project>:__keys__:{<view>:v<N>:<b>}` is the set of entity parts of a bucket (so a retired
  version is deleted without scanning the keyspace), on the slot of the bucket's values;
  `<project>:__meta__:{<view>:v<N>}` is a hash of what the materializer last pushed (see
  `Meta`). View names start with a letter, so neither clashes with a value key.
- Format 1 (`<project>:<view>:v<N>:<entity>`, one key set and meta hash per version) is only
  named here so that materialize can delete what a JStore of that format left behind.
Encoding works column-wise with Arrow compute, so materializing a million rows stays out of
Python loops; lookups encode their few request entities through the same path.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from jstore.arrow_types import ARROW_TYPES
from jstore.durations import parse_timestamp
from jstore.model import DType, ResolvedView

ENTITY_SEPARATOR = "|"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


BUCKETS = 16
"""Hash-tag buckets per view version. Part of the key format: changing it is a migration.

Fewer buckets mean fewer MGETs per lookup (at most one per bucket) and larger MSETs; more
spread a view version over more slots. 16 measured best on a 3-node cluster (see
docs/online_store_format.md, "Redis Cluster")."""


def bucket(entity: str) -> int:
    return zlib.crc32(entity.encode()) % BUCKETS


def bucket_prefix(project: str, name: str, version: int, number: int) -> str:
    """What every value key of one bucket starts with: up to and including the `:` after its
    hash tag."""
    return f"{project}:{{{name}:v{version}:{number}}}:"


def value_keys(project: str, view: ResolvedView, entities: Sequence[str]) -> list[str]:
    """The value key of each entity part: its bucket's prefix, then the part."""
    prefixes = [bucket_prefix(project, view.name, view.version, b) for b in range(BUCKETS)]
    return [prefixes[bucket(e)] + e for e in entities]


def index_key(project: str, name: str, version: int, number: int) -> str:
    """The set of entity parts stored in one bucket of a view version (on the bucket's slot)."""
    return f"{project}:__keys__:{{{name}:v{version}:{number}}}"


def meta_key(project: str, name: str, version: int) -> str:
    return f"{project}:__meta__:{{{name}:v{version}}}"


def format1_keys(project: str, name: str, version: int) -> tuple[str, str, str]:
    """Format 1's value key prefix, key set and meta hash of a view version."""
    return (
        f"{project}:{name}:v{version}:",
        f"{project}:__keys__:{name}:v{version}",
        f"{project}:__meta__:{name}:v{version}",
    )


@dataclass(frozen=True)
class Meta:
    """What the materializer last pushed for a view version (the `__meta__` hash)."""

    coverage_end: datetime | None
    """End of the view's published coverage when it was materialized."""
    synced_at: datetime
    """When the materializer started reading the offline store: publishes before it are in."""
    watermark: datetime | None
    """The largest `_computed_at` pushed."""

    def to_hash(self) -> dict[str, str]:
        return {
            name: value.isoformat()
            for name, value in (
                ("coverage_end", self.coverage_end),
                ("synced_at", self.synced_at),
                ("watermark", self.watermark),
            )
            if value is not None
        }

    @classmethod
    def from_hash(cls, fields: dict[bytes, bytes]) -> Meta | None:
        if b"synced_at" not in fields:
            return None

        def ts(name: bytes) -> datetime | None:
            return parse_timestamp(fields[name].decode()) if name in fields else None

        return cls(
            coverage_end=ts(b"coverage_end"),
            synced_at=ts(b"synced_at"),  # type: ignore[arg-type]
            watermark=ts(b"watermark"),
        )


def _text(column: pa.Array, dtype: DType) -> pa.Array:
    """A column as text (nulls stay null): the one spelling of a value in keys and values."""
    if dtype == "timestamp":
        column = pc.cast(column, ARROW_TYPES["timestamp"])
        seconds = pc.cast(column, pa.timestamp("s", tz="UTC"), safe=False)
        whole = pc.fill_null(pc.equal(pc.cast(seconds, column.type), column), True)
        return pc.if_else(
            whole, pc.strftime(seconds, TIMESTAMP_FORMAT), pc.strftime(column, TIMESTAMP_FORMAT)
        )
    return pc.cast(column, pa.string())


def entity_parts(columns: Sequence[pa.Array], dtypes: Sequence[DType]) -> list[str]:
    """The `<entity>` part of each row's key, from the join key columns in key order."""
    texts = []
    for column, dtype in zip(columns, dtypes, strict=True):
        text = _text(column, dtype)
        text = pc.replace_substring(text, "%", "%25")
        texts.append(pc.replace_substring(text, ENTITY_SEPARATOR, "%7C"))
    if len(texts) == 1:
        return texts[0].to_pylist()
    return pc.binary_join_element_wise(*texts, ENTITY_SEPARATOR).to_pylist()


def request_entity_parts(view: ResolvedView, entities: Sequence[dict[str, Any]]) -> list[str]:
    """The `<entity>` parts of lookup entities given as JSON objects of join key values."""
    return key_tuple_parts(view, request_keys(view, entities))


def key_tuple_parts(view: ResolvedView, keys: Sequence[tuple]) -> list[str]:
    """The `<entity>` parts of typed key tuples (in `view.join_keys` order)."""
    dtypes = [view.key_dtypes[k] for k in view.join_keys]
    columns = [
        pa.array([key[i] for key in keys], ARROW_TYPES[dtype]) for i, dtype in enumerate(dtypes)
    ]
    return entity_parts(columns, dtypes)


def request_keys(view: ResolvedView, entities: Sequence[dict[str, Any]]) -> list[tuple]:
    """Typed key tuples of entities given as JSON objects of join key values.

    Raises ValueError naming `entities.<i>.<key>` for a missing or mistyped key.
    """
    columns = []
    for key in view.join_keys:
        dtype = view.key_dtypes[key]
        values = []
        for i, entity in enumerate(entities):
            value = entity.get(key)
            if value is None:
                raise ValueError(f"entities.{i}.{key}: missing join key")
            try:
                values.append(_coerce(value, dtype))
            except (TypeError, ValueError):
                raise ValueError(
                    f"entities.{i}.{key}: {value!r} is not a {dtype} join key value"
                ) from None
        columns.append(values)
    return list(zip(*columns, strict=True))


def _coerce(value: Any, dtype: DType) -> Any:
    if dtype == "string":
        if isinstance(value, bool | dict | list):
            raise TypeError
        return str(value)
    if dtype == "int64":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError
        return int(value)
    if dtype == "float64":
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    if dtype == "bool":
        if not isinstance(value, bool):
            raise TypeError
        return value
    return parse_timestamp(value) if isinstance(value, str) else value


def _json_column(column: pa.Array, dtype: DType) -> pa.Array:
    """Each value as a JSON token; floats keep a fraction or exponent so they decode as floats."""
    if dtype == "string":
        return pa.array(
            [json.dumps(v, ensure_ascii=False) for v in column.to_pylist()], pa.string()
        )
    if dtype == "timestamp":
        text = pc.binary_join_element_wise('"', _text(column, dtype), '"', "")
    elif dtype == "float64":
        text = pc.cast(column, pa.string())
        integral = pc.invert(pc.or_(pc.match_substring(text, "."), pc.match_substring(text, "e")))
        if not pc.all(pc.is_finite(column)).as_py():
            integral = pc.and_(integral, pc.is_finite(column))
            text = pc.replace_substring(pc.replace_substring(text, "nan", "NaN"), "inf", "Infinity")
        text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    else:
        text = pc.cast(column, pa.string())
    return pc.fill_null(text, "null")


def packed_values(batch: pa.RecordBatch | pa.Table, view: ResolvedView) -> list[str]:
    """The packed JSON value of each row: `[feature_ts, f1, …, fn]`."""
    parts = [_json_column(batch.column("feature_ts"), "timestamp")]
    parts += [_json_column(batch.column(f.name), f.dtype) for f in view.features]
    joined = pc.binary_join_element_wise(*parts, ",")
    return pc.binary_join_element_wise("[", joined, "]", "").to_pylist()


def drained(batch: pa.RecordBatch | pa.Table, view: ResolvedView) -> pa.Array:
    """Rows holding the empty-window values (DESIGN.md "Absent means empty"): keys to delete."""
    mask = None
    for spec in view.features:
        column = batch.column(spec.name)
        empty = (
            pc.fill_null(pc.equal(column, 0), False)
            if spec.empty_value == 0
            else pc.is_null(column)
        )
        mask = empty if mask is None else pc.and_(mask, empty)
    return mask


def unpack(raws: Sequence[bytes | None]) -> list[list[Any] | None]:
    """Stored values back as `[feature_ts, f1, …, fn]` (None stays None), in one JSON parse."""
    found = [raw for raw in raws if raw is not None]
    decoded = iter(json.loads(b"[" + b",".join(found) + b"]") if found else [])
    return [None if raw is None else next(decoded) for raw in raws]
