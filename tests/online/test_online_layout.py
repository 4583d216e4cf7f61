"""The exact bytes of the Redis layout (docs/online_store_format.md): a change is a migration."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from jstore.arrow_types import ARROW_TYPES
from jstore.model import Entity, EventSource, FieldSpec, SqlFeatureView
from jstore.online.layout import (
    BUCKETS,
    bucket,
    drained,
    entity_parts,
    format1_keys,
    index_key,
    meta_key,
    packed_values,
    request_entity_parts,
    unpack,
    value_keys,
)
from jstore.repo import FeatureRepo

T = datetime(2024, 5, 1, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def view():
    source = EventSource(
        name="orders",
        topic="orders",
        timestamp_field="ts",
        schema=[
            FieldSpec(name="shop", dtype="string"),
            FieldSpec(name="n", dtype="int64"),
            FieldSpec(name="ts", dtype="timestamp"),
        ],
    )
    sql_view = SqlFeatureView(
        name="shop_orders",
        entities=["shop", "till"],
        source="orders",
        step="1h",
        window="1h",
        query="SELECT shop, n FROM input_data",
        features=[
            FieldSpec(name="orders", dtype="int64"),
            FieldSpec(name="mean", dtype="float64"),
            FieldSpec(name="label", dtype="string"),
            FieldSpec(name="flag", dtype="bool"),
            FieldSpec(name="seen", dtype="timestamp"),
        ],
    )
    repo = FeatureRepo.of(
        Entity(name="shop", join_keys=["shop"]),
        Entity(name="till", join_keys=["n"]),
        source,
        sql_view,
    )
    return repo.resolve("shop_orders", 3)


def test_key_names(view):
    """Format 2: an entity's key is the view version's hash tag with the entity's bucket (CRC-32
    of the entity part modulo 16), then the entity part of its key columns."""
    (entity,) = entity_parts([pa.array(["s1"]), pa.array([7], pa.int64())], ["string", "int64"])
    assert (BUCKETS, bucket(entity), bucket("u1"), bucket("a%7Cb|-1")) == (16, 12, 6, 2)
    assert value_keys("acme", view, [entity, "a%7Cb|-1"]) == [
        "acme:{shop_orders:v3:12}:s1|7",
        "acme:{shop_orders:v3:2}:a%7Cb|-1",
    ]
    assert index_key("acme", "shop_orders", 3, 12) == "acme:__keys__:{shop_orders:v3:12}"
    assert meta_key("acme", "shop_orders", 3) == "acme:__meta__:{shop_orders:v3}"


def test_format_1_keys_are_named_for_their_removal():
    assert format1_keys("acme", "shop_orders", 3) == (
        "acme:shop_orders:v3:",
        "acme:__keys__:shop_orders:v3",
        "acme:__meta__:shop_orders:v3",
    )


def test_entity_part_joins_key_values_in_key_order_and_escapes(view):
    columns = [pa.array(["s1", "a|b", "50%"]), pa.array([7, -1, 0], pa.int64())]
    assert entity_parts(columns, ["string", "int64"]) == ["s1|7", "a%7Cb|-1", "50%25|0"]
    assert request_entity_parts(view, [{"shop": "a|b", "n": -1}, {"shop": 5, "n": "7"}]) == [
        "a%7Cb|-1",
        "5|7",
    ]


def test_a_request_entity_without_a_key_or_with_a_wrong_type_is_refused(view):
    with pytest.raises(ValueError, match=r"^entities\.1\.n: missing join key"):
        request_entity_parts(view, [{"shop": "s", "n": 1}, {"shop": "s"}])
    with pytest.raises(ValueError, match=r"^entities\.0\.n: 1\.5 is not a int64"):
        request_entity_parts(view, [{"shop": "s", "n": 1.5}])


def test_packed_value_is_one_json_array_feature_ts_first(view):
    batch = pa.RecordBatch.from_pydict(
        {
            "feature_ts": pa.array([T, T], ARROW_TYPES["timestamp"]),
            "orders": pa.array([3, None], pa.int64()),
            "mean": pa.array([2.0, None], pa.float64()),
            "label": pa.array(['say "hi"', None]),
            "flag": pa.array([True, None]),
            "seen": pa.array(
                [datetime(2024, 5, 1, 9, 30, 0, 250000, tzinfo=UTC), None],
                ARROW_TYPES["timestamp"],
            ),
        }
    )
    values = packed_values(batch, view)
    assert values == [
        '["2024-05-01T10:00:00Z",3,2.0,"say \\"hi\\"",true,"2024-05-01T09:30:00.250000Z"]',
        '["2024-05-01T10:00:00Z",null,null,null,null,null]',
    ]
    assert unpack([values[0].encode(), None])[0] == [
        "2024-05-01T10:00:00Z",
        3,
        2.0,
        'say "hi"',
        True,
        "2024-05-01T09:30:00.250000Z",
    ]
    assert drained(batch, view).to_pylist() == [False, True]
