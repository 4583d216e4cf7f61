"""The plan PostgreSQL picks for a view's candidate rows: one primary-key seek per span table row
when a join asks few spans of a large table, one hash join over a scan when it asks many (the
answers are test_pit_join.py's; this is what they cost)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from jstore.offline import OfflineStore
from jstore.offline.pit_candidates import SESSION_SETTINGS, SPAN_TABLE_PREFIX, SpanTables
from jstore.offline.pit_keys import KeyDictionary
from jstore.offline.pit_spans import Spans
from tests.factories import stage_rows
from tests.offline.conftest import T0

CARDS, DAYS = 2_000, 60
US = 1_000_000


def _publish(settings, view) -> None:
    """CARDS cards, a count_1d row each day of DAYS."""
    rows = [
        {"card_id": f"c{card}", "feature_ts": T0 + timedelta(days=day), "count_1d": 1}
        for card in range(CARDS)
        for day in range(DAYS)
    ]
    with OfflineStore(settings) as store:
        if store.layout.hypertables:
            pytest.skip(
                "plain PostgreSQL's monthly partitions: over TimescaleDB's chunks of 30 days the "
                "planner's choice for the few spans varied between two runs (a hash, then seeks)"
            )
        end = T0 + timedelta(days=DAYS)
        store.publish(view, stage_rows(settings, view, rows, T0, end, "r"))
        store.conn.execute(f'ANALYZE "{settings.offline_schema}"."{view.table}"')


def _plan(settings, view, cards: list[int], days: list[int]) -> str:
    """EXPLAIN of the candidate query of entity rows of these cards at noon of these days."""
    spans = Spans(view, KeyDictionary([pa.string()]), budget=1_000_000)
    keys = pa.array([f"c{card}" for card in cards for _ in days])
    hours = [day * 24 + 12 for _ in cards for day in days]
    times = int(T0.timestamp()) * US + np.array(hours, np.int64) * 3600 * US
    spans.add(spans.dictionary.encode([keys]), times)
    dsn = settings.postgres_dsn.get_secret_value()
    with SpanTables(dsn, settings.offline_schema) as tables:
        table = tables.load(view, spans.tables(spans.ranges()))
        with psycopg.connect(dsn) as conn:
            for setting in SESSION_SETTINGS:
                conn.execute(setting)
            query = table.query(view, view.features).as_string(conn)
            return "\n".join(row[0] for row in conn.execute("EXPLAIN " + query))


def test_few_spans_seek_the_primary_key_and_many_hash_over_one_scan(settings, card_view):
    """A sixth of the cards asked on two days: 668 span table rows for 120,000 stored rows, a
    seek each (at PostgreSQL's default random_page_cost, 4, the planner scanned the table);
    every card asked: 4,000, one scan."""
    _publish(settings, card_view)

    few = _plan(settings, card_view, cards=list(range(0, CARDS, 6)), days=[10, 40])
    assert "Index Scan" in few
    assert not _scanned_view_tables(few)

    many = _plan(settings, card_view, cards=list(range(CARDS)), days=[10, 40])
    assert "Hash Join" in many
    assert _scanned_view_tables(many)


def _scanned_view_tables(plan: str) -> list[str]:
    """The plan's sequential scans other than of the span table (a partition, or a
    TimescaleDB chunk, of the view's table)."""
    scans = [line.split(" on ")[1].split()[0] for line in plan.splitlines() if "Seq Scan" in line]
    return [table for table in scans if not table.startswith(SPAN_TABLE_PREFIX)]
