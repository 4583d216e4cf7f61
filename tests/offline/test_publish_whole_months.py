"""Publishing an interval that covers at least SWAP_SHARE of a calendar month (plain
PostgreSQL): the month's new rows, and its stored rows outside the interval, go into a fresh
table that replaces the month's partition in the publish's transaction; short ends of the
interval inside a month are deleted and inserted as before."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from psycopg import sql

from jstore.offline import OfflineStore, StagedRunRejected
from jstore.offline.changes import REMOVED, queue_id
from jstore.offline.tables import partition_name
from tests.factories import stage_rows
from tests.offline.conftest import HOUR

APRIL = datetime(2024, 4, 1, tzinfo=UTC)
MAY = datetime(2024, 5, 1, tzinfo=UTC)
JUNE = datetime(2024, 6, 1, tzinfo=UTC)
JULY = datetime(2024, 7, 1, tzinfo=UTC)


def _row(account_id, ts, count):
    return {"bank": "b", "account_id": account_id, "feature_ts": ts, "count_1h": count}


def _stored(store, view):
    rows = store.conn.execute(
        sql.SQL("SELECT account_id, feature_ts, count_1h, _run_id FROM {} ORDER BY 1, 2").format(
            sql.Identifier(store.schema, view.table)
        )
    ).fetchall()
    return [tuple(row) for row in rows]


def _removed(store, view):
    rows = store.conn.execute(
        sql.SQL("SELECT DISTINCT account_id FROM {} ORDER BY 1").format(
            queue_id(store.schema, view, REMOVED)
        )
    ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def store(settings):
    with OfflineStore(settings) as s:
        if s.layout.hypertables:
            pytest.skip("whole-month partitions are the plain PostgreSQL layout")
        yield s


def test_a_whole_month_replaces_its_partition(store, settings, spend_view):
    first = [_row(1, MAY, 1), _row(1, MAY + 40 * HOUR, 2), _row(2, JUNE - HOUR, 3)]
    assert store.publish(spend_view, stage_rows(settings, spend_view, first, MAY, JUNE, "r1")) == 3
    again = [_row(1, MAY + HOUR, 10)]
    assert store.publish(spend_view, stage_rows(settings, spend_view, again, MAY, JUNE, "r2")) == 1

    assert _stored(store, spend_view) == [(1, MAY + HOUR, 10, "r2")]
    assert _removed(store, spend_view) == [2]
    assert store.latest_for_entities(spend_view, [("b", 1)])[("b", 1)]["count_1h"] == 10
    partition = store.conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        [sql.Identifier(store.schema, spend_view.table).as_string(store.conn)],
    ).fetchall()
    assert partition == [(partition_name(spend_view.table, MAY),)]
    assert _index_shapes(store, partition[0][0]) == [
        ("brin (_computed_at)", True),
        ("btree (bank, account_id, feature_ts)", True),
    ]


def test_whole_months_and_the_ends_around_them(store, settings, spend_view):
    old = [_row(1, APRIL + h * 24 * HOUR, h) for h in range(0, 30, 5)]
    old += [_row(1, MAY + 24 * HOUR, 100), _row(1, JUNE + 24 * HOUR, 200)]
    old += [_row(1, JULY + 24 * HOUR, 300)]
    store.publish(spend_view, stage_rows(settings, spend_view, old, APRIL, JULY + 48 * HOUR, "r1"))
    new = [_row(1, APRIL + 20 * 24 * HOUR, 7), _row(1, JUNE, 8), _row(2, JULY, 9)]
    start, end = APRIL + 15 * 24 * HOUR, JULY + 10 * HOUR
    assert store.publish(spend_view, stage_rows(settings, spend_view, new, start, end, "r2")) == 3

    assert _stored(store, spend_view) == [
        (1, APRIL, 0, "r1"),
        (1, APRIL + 5 * 24 * HOUR, 5, "r1"),
        (1, APRIL + 10 * 24 * HOUR, 10, "r1"),
        (1, APRIL + 20 * 24 * HOUR, 7, "r2"),
        (1, JUNE, 8, "r2"),
        (1, JULY + 24 * HOUR, 300, "r1"),
        (2, JULY, 9, "r2"),
    ]


def test_no_scratch_table_is_left_behind(store, settings, spend_view):
    rows = [_row(1, MAY, 1), _row(1, JUNE + HOUR, 2)]
    store.publish(spend_view, stage_rows(settings, spend_view, rows, MAY, JUNE + 2 * HOUR, "r1"))

    tables = store.conn.execute(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' AND relname LIKE %s ORDER BY 1",
        [store.schema, f"{spend_view.table}%"],
    ).fetchall()
    assert [t[0] for t in tables] == [
        f"{spend_view.table}__files",
        partition_name(spend_view.table, MAY),
        partition_name(spend_view.table, JUNE),
        f"{spend_view.table}__published",
        f"{spend_view.table}__removed",
    ]


def _index_shapes(store, table):
    """Each index of `table` as the part of its definition after USING, and whether it is
    attached to an index of the parent table."""
    rows = store.conn.execute(
        "SELECT regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', ''), "
        "EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid) "
        "FROM pg_index i WHERE i.indrelid = %s::regclass ORDER BY 1",
        [sql.Identifier(store.schema, table).as_string(store.conn)],
    ).fetchall()
    return [tuple(row) for row in rows]


def test_a_rebuilt_month_gets_the_indexes_of_its_table(store, settings, spend_view):
    """A table made before text keys were COLLATE "C" and `_computed_at`'s index a BRIN one, and
    given an index of its own, keeps its shape: the month's new table gets a copy of each of
    the table's indexes, which the attach adopts (none is built again, none is missing)."""
    store.ensure_table(spend_view)
    table = sql.Identifier(store.schema, spend_view.table)
    brin = store.conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = %s::regclass AND a.amname = 'brin'",
        [table.as_string(store.conn)],
    ).fetchone()[0]
    store.conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(store.schema, brin)))
    store.conn.execute(sql.SQL("CREATE INDEX ON {} (_computed_at)").format(table))
    store.conn.execute(sql.SQL("CREATE INDEX ON {} (feature_ts DESC)").format(table))
    store.conn.execute(
        sql.SQL('ALTER TABLE {} ALTER COLUMN bank TYPE text COLLATE "default"').format(table)
    )
    first = [_row(1, MAY, 1), _row(2, MAY + HOUR, 2)]
    store.publish(spend_view, stage_rows(settings, spend_view, first, MAY, JUNE, "r1"))
    again = [_row(1, MAY + 2 * HOUR, 3)]
    store.publish(spend_view, stage_rows(settings, spend_view, again, MAY, JUNE, "r2"))

    assert _stored(store, spend_view) == [(1, MAY + 2 * HOUR, 3, "r2")]
    assert _removed(store, spend_view) == [2]
    expected = [
        ("btree (_computed_at)", True),
        ("btree (bank, account_id, feature_ts)", True),
        ("btree (feature_ts DESC)", True),
    ]
    assert _index_shapes(store, partition_name(spend_view.table, MAY)) == expected


def test_a_whole_month_with_rows_outside_it_is_refused(store, settings, spend_view):
    store.publish(spend_view, stage_rows(settings, spend_view, [_row(1, MAY, 1)], MAY, JUNE, "r1"))
    late = [_row(1, MAY + HOUR, 9), _row(1, JUNE, 9)]
    with pytest.raises(StagedRunRejected, match=r"feature_ts: .* rows outside \[2024-05-01"):
        store.publish(spend_view, stage_rows(settings, spend_view, late, MAY, JUNE, "r2"))

    assert _stored(store, spend_view) == [(1, MAY, 1, "r1")]
    scratch = store.conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE %s",
        [store.schema, f"{spend_view.table}\\_\\_load\\_%"],
    ).fetchone()[0]
    assert scratch == 0


def test_a_rebuilt_month_keeps_every_stored_row_outside_the_interval(store, settings, spend_view):
    """The month's other rows are copied by several statements, each over its share of the old
    partition's pages (3,000 rows fill dozens): together they copy each row once."""
    stamps = [MAY + (h % (31 * 24)) * HOUR for h in range(0, 3000 * 7, 7)]
    first = [_row(i, ts, i) for i, ts in enumerate(stamps)]
    store.publish(spend_view, stage_rows(settings, spend_view, first, MAY, JUNE, "r1"))
    start, end = MAY + 10 * 24 * HOUR, MAY + 20 * 24 * HOUR
    again = [_row(i, ts, -i) for i, ts in enumerate(stamps) if start <= ts < end and i % 2]
    store.publish(spend_view, stage_rows(settings, spend_view, again, start, end, "r2"))

    kept = [(i, ts, i, "r1") for i, ts in enumerate(stamps) if not start <= ts < end]
    replaced = [(r["account_id"], r["feature_ts"], r["count_1h"], "r2") for r in again]
    assert len(kept) > 2000
    assert _stored(store, spend_view) == sorted(kept + replaced)


def _removed_by_last_publish(store, view):
    """The keys the latest publish queued as removed, as queued (duplicates kept)."""
    rows = store.conn.execute(
        sql.SQL(
            "SELECT account_id FROM {0} WHERE _computed_at = "
            "(SELECT max(_computed_at) FROM {0}) ORDER BY 1"
        ).format(queue_id(store.schema, view, REMOVED))
    ).fetchall()
    return [row[0] for row in rows]


def test_a_rebuilt_month_queues_each_entity_it_removes_once(store, settings, spend_view):
    old = [_row(1, MAY + 24 * HOUR, 1), _row(1, MAY + 48 * HOUR, 2), _row(2, MAY + 96 * HOUR, 3)]
    old += [_row(2, MAY + 97 * HOUR, 4), _row(3, JUNE - HOUR, 5), _row(4, MAY + 24 * HOUR, 6)]
    store.publish(spend_view, stage_rows(settings, spend_view, old, MAY, JUNE, "r1"))
    new = [_row(1, MAY + 72 * HOUR, 7), _row(1, MAY + 73 * HOUR, 7), _row(4, MAY + 24 * HOUR, 8)]
    may_30 = JUNE - 24 * HOUR
    store.publish(spend_view, stage_rows(settings, spend_view, new, MAY, may_30, "r2"))

    assert _removed_by_last_publish(store, spend_view) == [2]  # 3's row is outside May 1-31

    store.publish(spend_view, stage_rows(settings, spend_view, [], MAY, JUNE, "r3"))

    assert _stored(store, spend_view) == []
    assert _removed_by_last_publish(store, spend_view) == [1, 3, 4]
