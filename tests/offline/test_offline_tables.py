"""The offline table of a view version: columns, primary key, monthly partitions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jstore.offline.tables import chunk_interval, months_between, partition_name
from tests.factories import stage_rows
from tests.offline.conftest import HOUR, T0


def _columns(store, table):
    return store.conn.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        [store.schema, table],
    ).fetchall()


def test_table_has_keys_feature_ts_features_and_run_columns(store, spend_view):
    store.ensure_table(spend_view)
    store.ensure_table(spend_view)  # idempotent
    assert _columns(store, "account_spend__v1") == [
        ("bank", "text", "NO"),
        ("account_id", "bigint", "NO"),
        ("feature_ts", "timestamp with time zone", "NO"),
        ("count_1h", "bigint", "YES"),
        ("amount_sum_1h", "double precision", "YES"),
        ("amount_max_1h", "double precision", "YES"),
        ("_run_id", "text", "NO"),
        ("_computed_at", "timestamp with time zone", "NO"),
    ]
    primary_key = store.conn.execute(
        "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary",
        [f"{store.schema}.account_spend__v1"],
    ).fetchone()[0]
    assert primary_key == ["bank", "account_id", "feature_ts"]


def test_plain_postgres_partitions_by_month_created_by_publish(store, settings, spend_view):
    if store.layout.hypertables:
        pytest.skip("the timescaledb extension is installed: tables are hypertables")
    store.ensure_table(spend_view)
    strategy = store.conn.execute(
        "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = %s::regclass",
        [f"{store.schema}.account_spend__v1"],
    ).fetchone()
    assert strategy == ("r",)
    start, end = T0 - 2 * HOUR, T0 + 2 * HOUR  # 2024-04-30 22:00 .. 2024-05-01 02:00
    rows = [
        {"bank": "b", "account_id": 1, "feature_ts": start, "count_1h": 1},
        {"bank": "b", "account_id": 1, "feature_ts": T0 + HOUR, "count_1h": 2},
    ]
    store.publish(spend_view, stage_rows(settings, spend_view, rows, start, end, "r1"))
    partitions = store.conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass ORDER BY 1",
        [f"{store.schema}.account_spend__v1"],
    ).fetchall()
    assert partitions == [
        (
            "account_spend__v1__p202404",
            "FOR VALUES FROM ('2024-04-01 00:00:00+00') TO ('2024-05-01 00:00:00+00')",
        ),
        (
            "account_spend__v1__p202405",
            "FOR VALUES FROM ('2024-05-01 00:00:00+00') TO ('2024-06-01 00:00:00+00')",
        ),
    ]


def test_timescaledb_hypertable_with_compression_and_no_background_retention(store, spend_view):
    """Retention is JStore's own (retention.py): TimescaleDB's policy would drop chunks without
    queueing the entities left without rows for the materializer."""
    if not store.layout.hypertables:
        pytest.skip("the timescaledb extension is not installed in this database")
    view = spend_view.model_copy(
        update={
            "definition": spend_view.definition.model_copy(update={"retention": timedelta(days=90)})
        }
    )
    store.ensure_table(view)
    dims = store.conn.execute(
        "SELECT column_name, time_interval FROM timescaledb_information.dimensions "
        "WHERE hypertable_schema = %s AND hypertable_name = 'account_spend__v1'",
        [store.schema],
    ).fetchall()
    assert dims == [("feature_ts", timedelta(days=7))]
    settings_rows = store.conn.execute(
        "SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc "
        "FROM timescaledb_information.compression_settings "
        "WHERE hypertable_schema = %s AND hypertable_name = 'account_spend__v1' ORDER BY attname",
        [store.schema],
    ).fetchall()
    assert ("bank", 1, None, None) in settings_rows
    assert ("account_id", 2, None, None) in settings_rows
    assert ("feature_ts", None, 1, False) in settings_rows
    jobs = store.conn.execute(
        "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name = "
        "'account_spend__v1' AND hypertable_schema = %s ORDER BY 1",
        [store.schema],
    ).fetchall()
    assert jobs == [("policy_compression",)]


def test_layout_arithmetic():
    assert chunk_interval(timedelta(hours=1)) == timedelta(days=7)
    assert chunk_interval(timedelta(minutes=1)) == timedelta(days=1)
    assert chunk_interval(timedelta(days=1)) == timedelta(days=30)
    assert [m.month for m in months_between(T0 - HOUR, T0 + timedelta(days=40))] == [4, 5, 6]
    assert months_between(T0, T0 + timedelta(days=31)) == [T0]
    long_name = "v" * 60 + "__v1"
    assert len(partition_name(long_name, T0)) == 63


def test_text_keys_compare_bytewise_and_computed_at_has_a_brin_index(store, spend_view):
    store.ensure_table(spend_view)
    table = f"{store.schema}.account_spend__v1"
    collations = store.conn.execute(
        "SELECT a.attname, c.collname FROM pg_attribute a "
        "LEFT JOIN pg_collation c ON c.oid = a.attcollation "
        "WHERE a.attrelid = %s::regclass AND a.attname IN ('bank', 'account_id', '_run_id') "
        "ORDER BY a.attnum",
        [table],
    ).fetchall()
    assert collations == [("bank", "C"), ("account_id", None), ("_run_id", "default")]
    indexes = store.conn.execute(
        "SELECT regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', '') FROM pg_index "
        "WHERE indrelid = %s::regclass ORDER BY 1",
        [table],
    ).fetchall()
    # a hypertable also gets TimescaleDB's default index on its time column
    time_index = [("btree (feature_ts DESC)",)] if store.layout.hypertables else []
    assert indexes == [
        ("brin (_computed_at)",),
        ("btree (bank, account_id, feature_ts)",),
        *time_index,
    ]
