"""The join reads a view's candidate rows from its published files when it can, and from
PostgreSQL when it cannot, with the same answer either way."""

from __future__ import annotations

import pyarrow as pa
from psycopg import sql

from jstore.lake import staging_dir
from jstore.offline import pit_candidates, pit_join
from tests.factories import stage_rows
from tests.offline.conftest import HOUR, T0
from tests.offline.test_pit_join import _features, _spend, without_published_files

FEATURES = ("count_1h", "amount_sum_1h")


def _published_twice(store, settings, spend_view):
    """Run a over [00:00, 06:00): x1 counts 1 at 01:00 and 2 at 04:00, y1 counts 5 at 02:00.
    Run b, later, over [03:00, 05:00): x1 counts 7 at 03:00, y1 has no row there."""
    first = [_spend("x", 1, 1, 1, 10.0, 10.0), _spend("x", 1, 4, 2, 20.0, 10.0)]
    first.append(_spend("y", 1, 2, 5, 50.0, 10.0))
    store.publish(spend_view, stage_rows(settings, spend_view, first, T0, T0 + 6 * HOUR, "a"))
    second = [_spend("x", 1, 3, 7, 70.0, 10.0)]
    store.publish(
        spend_view, stage_rows(settings, spend_view, second, T0 + 3 * HOUR, T0 + 5 * HOUR, "b")
    )


def _join(store, spend_view) -> list[tuple]:
    entities = pa.table(
        {
            "bank": ["x", "x", "x", "x", "y", "y"],
            "account_id": [1, 1, 1, 1, 1, 1],
            "event_timestamp": [T0 + h * HOUR for h in (1, 2, 3, 4, 2, 5)],
        }
    )
    joined = store.point_in_time_join(
        entities, _features(spend_view, *FEATURES), {spend_view.table: [(T0, T0 + 6 * HOUR)]}
    )
    rows = joined.table.to_pylist()
    return [tuple(row[f"account_spend__{name}"] for name in FEATURES) for row in rows]


EXPECTED = [
    (1, 10.0),  # x1 at 01:00: run a's row
    (1, 10.0),  # x1 at 02:00: still run a's 01:00 row
    (7, 70.0),  # x1 at 03:00: run b's row
    (7, 70.0),  # x1 at 04:00: run a's 04:00 row was replaced by run b's range
    (5, 50.0),  # y1 at 02:00: run a's row
    (5, 50.0),  # y1 at 05:00: run b held no row of y1, and 02:00 is outside its range
]


def test_a_view_with_its_files_in_place_sends_postgresql_no_spans(
    store, settings, spend_view, monkeypatch
):
    _published_twice(store, settings, spend_view)

    def refuse(*args):
        raise AssertionError("the spans were sent to PostgreSQL")

    monkeypatch.setattr(pit_candidates.SpanTables, "load", refuse)
    assert _join(store, spend_view) == EXPECTED


def test_the_files_and_the_table_give_the_same_rows(store, settings, spend_view, monkeypatch):
    _published_twice(store, settings, spend_view)
    assert _join(store, spend_view) == EXPECTED
    without_published_files(monkeypatch)
    assert _join(store, spend_view) == EXPECTED


def test_a_staged_run_deleted_by_hand_is_read_from_postgresql(store, settings, spend_view):
    _published_twice(store, settings, spend_view)
    run = staging_dir(settings, spend_view.name, "a")
    run.fs.delete_dir(run.path)
    assert _join(store, spend_view) == EXPECTED


def test_a_table_written_by_hand_is_read_from_postgresql(store, settings, spend_view):
    """An UPDATE outside a publish drops the files table (its rows may then differ from the
    files): the join reads the table as it now is."""
    _published_twice(store, settings, spend_view)
    table = sql.Identifier(settings.offline_schema, spend_view.table)
    store.conn.execute(
        sql.SQL("UPDATE {} SET count_1h = 9, amount_sum_1h = 90.0 WHERE bank = 'y'").format(table)
    )
    assert _join(store, spend_view) == [*EXPECTED[:4], (9, 90.0), (9, 90.0)]


def test_files_holding_many_rows_per_span_asked_are_left_for_postgresql(
    store, settings, spend_view, monkeypatch
):
    """Reading files costs per row they hold, the server's seeks per span: runs a and b hold 4
    rows, 2 per span asked (x1 and y1, one day each)."""
    _published_twice(store, settings, spend_view)
    loads = []
    original = pit_candidates.SpanTables.load

    def counted(self, *args):
        loads.append(args[0].name)
        return original(self, *args)

    monkeypatch.setattr(pit_candidates.SpanTables, "load", counted)
    monkeypatch.setattr(pit_join, "FILE_ROWS_PER_SPAN", 2)
    assert _join(store, spend_view) == EXPECTED
    assert loads == []
    monkeypatch.setattr(pit_join, "FILE_ROWS_PER_SPAN", 1)
    assert _join(store, spend_view) == EXPECTED
    assert loads == [spend_view.name]
