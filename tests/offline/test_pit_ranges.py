"""A join over its memory budget: key codes cut into ranges, joined one after the other, merged
back into entity-row order (the rows themselves: test_pit_join.py's `ranges` engine)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from jstore.offline import OfflineStore
from jstore.offline.pit_candidates import CHUNK_PERIODS
from jstore.offline.pit_keys import KeyDictionary
from jstore.offline.pit_spans import GAP_PERIODS, KeyRanges, Spans, span_rows
from jstore.offline.pit_spool import RangeSpools
from tests.factories import stage_rows
from tests.offline.conftest import HOUR, T0
from tests.offline.test_pit_join import cut_into_ranges

US = 1_000_000


def _spans(view, keys, hours, budget):
    """Spans of `view` (one key, card_id) for entity rows of cards `keys` (card n: code n)."""
    spans = Spans(view, KeyDictionary([pa.string()]), budget)
    _add(spans, keys, hours)
    return spans


def _add(spans, keys, hours):
    codes = spans.dictionary.encode([pa.array([f"c{n}" for n in keys])])
    spans.add(codes, np.array(hours, np.int64) * 3600 * US)


def test_ranges_hold_about_the_budget_and_never_split_a_key(card_view):
    # Codes 0-9, two days each (a daily checkpoint period): 20 spans.
    keys, hours = [c for c in range(10) for _ in (0, 1)], [1, 30] * 10
    ranges = _spans(card_view, keys, hours, budget=5).ranges()
    assert ranges.starts.tolist() == [0, 3, 5, 8]
    assert ranges.of(np.array([-1, 0, 2, 3, 4, 7, 8, 9])).tolist() == [0, 0, 0, 1, 1, 2, 3, 3]
    assert _spans(card_view, keys, hours, budget=20).ranges().starts.tolist() == [0]
    # One key with 6 spans stays whole in a budget of 2.
    one_key = _spans(card_view, [0] * 6 + [1], [0, 30, 50, 80, 100, 130, 0], budget=2)
    assert one_key.ranges().starts.tolist() == [0, 1]


def test_the_same_span_in_many_batches_counts_once_while_it_fits(card_view):
    spans = _spans(card_view, [0, 1], [1, 2], budget=3)
    for hour in range(3, 10):
        _add(spans, [0, 1], [hour, hour])
    assert len(spans.ranges()) == 1
    assert spans.count == 2


@pytest.mark.parametrize("budget", [1, 100])
def test_a_range_table_merges_its_spans_across_batches(card_view, budget):
    """In the file (budget 1) or in memory (100), the same spans."""
    spans = _spans(card_view, [0, 1, 2], [1, 2, 3], budget)
    _add(spans, [1, 2], [5, 30])
    ranges = KeyRanges(np.array([0, 1]))
    table = spans.table(ranges, 1)  # codes 1 and 2; code 1's first day seen twice
    assert table["_code"].to_pylist() == [1, 2]
    assert table["card_id"].to_pylist() == ["c1", "c2"]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)  # _spans' hours count from it
    assert [[t - epoch for t in lasts] for lasts in table["_lasts"].to_pylist()] == [
        [5 * HOUR],
        [3 * HOUR, 30 * HOUR],
    ]


def test_spools_give_back_each_batch_in_entity_row_order():
    ranges = KeyRanges(np.array([0, 10, 20]))
    schema = pa.schema([("row", pa.int64())])
    with tempfile.TemporaryDirectory() as folder:
        spools = RangeSpools(ranges, schema, folder)
        rows = np.arange(12)
        range_of_row = np.array([2, 0, 0, 1, 2, 2, 0, 1, 1, 0, 2, 0])
        for part in (slice(0, 5), slice(5, 12)):
            batch = pa.RecordBatch.from_arrays([pa.array(rows[part])], schema=schema)
            spools.write(batch, range_of_row[part])
        spools.finish()
        assert spools.read(1).column("row").to_pylist() == [3, 7, 8]
        taken = [spools.take(range_of_row[part]) for part in (slice(0, 7), slice(7, 12))]
        assert [r for batch in taken for r in batch.column("row").to_pylist()] == rows.tolist()
        spools.remove()


def test_a_join_over_budget_is_cut_into_ranges_with_the_rows_of_one(
    settings, spend_view, monkeypatch
):
    rows = [
        {
            "bank": "x",
            "account_id": a,
            "feature_ts": T0 + h * HOUR,
            "count_1h": a + h,
            "amount_sum_1h": 1.0,
            "amount_max_1h": None,
        }
        for a in range(6)
        for h in (1, 26)
    ]
    entities = pa.table(
        {
            "bank": ["x"] * 14,
            "account_id": [a for a in range(7) for _ in (0, 1)],
            "event_timestamp": [T0 + timedelta(hours=h) for _ in range(7) for h in (2, 27)],
        }
    )
    features = [(spend_view, spend_view.feature("count_1h"))]
    coverage = {spend_view.table: [(T0, T0 + 48 * HOUR)]}
    with OfflineStore(settings) as store:
        store.publish(spend_view, stage_rows(settings, spend_view, rows, T0, T0 + 48 * HOUR, "r"))
        whole = store.point_in_time_join(entities, features, coverage).table
        cut_into_ranges(monkeypatch)

        def batches(columns, rows):
            return (entities if columns is None else entities.select(columns)).to_batches(4)

        join = store.prepared_join(batches, entities.schema, features, coverage)
        assert len(join.ranges[spend_view.table]) == 5  # 14 spans, 3 a range
        cut = pa.Table.from_batches(list(join.batches(batches)), join.output_schema)
    assert cut.equals(whole)
    assert cut["account_spend__count_1h"].to_pylist() == [
        *(count for a in range(6) for count in (a + 1, a + 26)),
        0,
        0,
    ]


def test_no_spans_at_all_are_one_range(card_view):
    """A view kind no entity row asked of (every row refused before it), and a batch of rows
    whose keys are all null, hold no span: one range, nothing to fetch."""
    assert Spans(card_view, KeyDictionary([pa.string()]), 5).ranges().starts.tolist() == [0]
    spans = Spans(card_view, KeyDictionary([pa.string()]), 5)
    spans.add(np.array([-1, -1]), np.array([0, 3600]) * US)
    assert spans.count == 0
    assert spans.ranges().starts.tolist() == [0]


def test_tables_split_the_file_once_into_the_tables_of_each_range(card_view):
    rng = np.random.default_rng(1)
    spans = Spans(card_view, KeyDictionary([pa.string()]), 50)
    for _ in range(20):
        _add(spans, rng.integers(0, 200, 100).tolist(), rng.integers(0, 30 * 24, 100).tolist())
    ranges = spans.ranges()

    assert len(ranges) > 1
    tables = list(spans.tables(ranges))
    assert len(tables) == len(ranges)
    for index, table in enumerate(tables):
        assert table.equals(spans.table(ranges, index))


def test_span_rows_cut_a_key_at_chunks_and_gaps(card_view):
    """Per key, a row per run of periods asked in one chunk of CHUNK_PERIODS days counted from
    the origin given, at most GAP_PERIODS apart; a period of the run not asked holds its start
    less 1 µs."""
    dictionary = KeyDictionary([pa.string()])
    dictionary.encode([pa.array(["c0", "c1"])])
    day = 24 * 3600 * US
    chunk = CHUNK_PERIODS * day
    origin = 10 * day
    # Card 0: days 0, 2 and 2 + GAP + 1 (a gap), then the next chunk's first day; card 1: day 3;
    # all from the origin, day 10.
    days = [10, 12, 13 + GAP_PERIODS, 10 + CHUNK_PERIODS, 13]
    code = np.array([0, 0, 0, 0, 1])
    first = np.array(days) * day
    last = first + np.array([5, 6, 7, 8, 9]) * 3600 * US
    rows = span_rows(card_view, dictionary, code, first, last, origin).to_pylist()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    as_us = [
        {
            name: [(t - epoch) // timedelta(microseconds=1) for t in value]
            if name == "_lasts"
            else (value - epoch) // timedelta(microseconds=1)
            if isinstance(value, datetime)
            else value
            for name, value in row.items()
        }
        for row in rows
    ]
    assert as_us == [
        {"_code": 0, "card_id": "c0", "_chunk": origin, "_first": origin, "_last": last[1],
         "_lasts": [last[0], origin + day - 1, last[1]]},
        {"_code": 0, "card_id": "c0", "_chunk": origin, "_first": first[2], "_last": last[2],
         "_lasts": [last[2]]},
        {"_code": 0, "card_id": "c0", "_chunk": origin + chunk, "_first": origin + chunk,
         "_last": last[3], "_lasts": [last[3]]},
        {"_code": 1, "card_id": "c1", "_chunk": origin, "_first": first[4], "_last": last[4],
         "_lasts": [last[4]]},
    ]  # fmt: skip
