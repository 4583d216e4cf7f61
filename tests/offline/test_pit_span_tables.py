"""The join's span tables: one per join, dropped after it; a killed join's dropped by the next."""

from __future__ import annotations

import psycopg
import pyarrow as pa
from psycopg import sql

from jstore.offline import OfflineStore
from jstore.offline.pit_candidates import SPAN_TABLE_PREFIX
from tests.offline.conftest import T0


def _span_tables(conn: psycopg.Connection, schema: str) -> set[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
        [schema, SPAN_TABLE_PREFIX.replace("_", "\\_") + "%"],
    ).fetchall()
    return {row[0] for row in rows}


def test_a_join_drops_its_span_tables_and_those_of_killed_joins_only(settings, spend_view):
    schema = settings.offline_schema
    dsn = settings.postgres_dsn.get_secret_value()
    dead, alive = SPAN_TABLE_PREFIX + "dead", SPAN_TABLE_PREFIX + "alive"
    with OfflineStore(settings) as store, psycopg.connect(dsn, autocommit=True) as other:
        store.ensure_table(spend_view)
        for name in (dead, alive):
            other.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(schema, name)))
        # A running join holds its table's lock for as long as the table lives.
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"jstore.offline:{schema}.{alive}"])
        entities = pa.table({"bank": ["x"], "account_id": [1], "event_timestamp": [T0]})
        features = [(spend_view, spend_view.feature("count_1h"))]
        joined = store.point_in_time_join(entities, features, {spend_view.table: [(T0, T0)]})
        assert joined.table.num_rows == 1
        assert _span_tables(other, schema) == {alive}
