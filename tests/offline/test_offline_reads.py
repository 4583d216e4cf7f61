"""Reads for the API and the online store: latest rows, one entity's history, changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jstore.errors import InputError
from jstore.offline import OfflineStore
from tests.factories import stage_rows
from tests.offline.conftest import HOUR, T0


def _row(bank, account_id, hours, count):
    return {
        "bank": bank,
        "account_id": account_id,
        "feature_ts": T0 + hours * HOUR,
        "count_1h": count,
        "amount_sum_1h": float(count),
        "amount_max_1h": None,
    }


@pytest.fixture
def store(settings, spend_view):
    with OfflineStore(settings) as s:
        rows = [_row("x", 1, 0, 1), _row("x", 1, 2, 0), _row("x", 2, 1, 5), _row("y", 1, 3, 7)]
        s.publish(spend_view, stage_rows(settings, spend_view, rows, T0, T0 + 4 * HOUR, "r1"))
        yield s


def _batches_rows(batches):
    return [
        {k: v for k, v in row.items() if k != "_computed_at"}
        for batch in batches
        for row in batch.to_pylist()
    ]


def test_latest_for_entities(store, spend_view):
    latest = store.latest_for_entities(spend_view, [("x", 1), ("y", 1), ("z", 9)])
    assert latest == {
        ("x", 1): {
            "feature_ts": T0 + 2 * HOUR,
            "count_1h": 0,
            "amount_sum_1h": 0.0,
            "amount_max_1h": None,
        },
        ("y", 1): {
            "feature_ts": T0 + 3 * HOUR,
            "count_1h": 7,
            "amount_sum_1h": 7.0,
            "amount_max_1h": None,
        },
    }
    assert store.latest_for_entities(spend_view, []) == {}
    with pytest.raises(InputError, match=r"keys: .* does not match the join keys bank"):
        store.latest_for_entities(spend_view, [("x",)])


def test_history_is_one_entitys_rows_in_the_range(store, spend_view):
    rows = store.history(spend_view, {"bank": "x", "account_id": 1}, T0, T0 + 2 * HOUR)
    assert [(r["feature_ts"], r["count_1h"], r["_run_id"]) for r in rows] == [(T0, 1, "r1")]
    everything = store.history(spend_view, {"bank": "x", "account_id": 1})
    assert [r["feature_ts"] for r in everything] == [T0, T0 + 2 * HOUR]
    with pytest.raises(InputError, match="account_id: missing join key"):
        store.history(spend_view, {"bank": "x"})


def test_changed_since_gives_the_latest_row_of_each_changed_entity(settings, store, spend_view):
    everything = _batches_rows(store.changed_since(spend_view, None))
    assert [(r["bank"], r["account_id"], r["feature_ts"], r["count_1h"]) for r in everything] == [
        ("x", 1, T0 + 2 * HOUR, 0),
        ("x", 2, T0 + HOUR, 5),
        ("y", 1, T0 + 3 * HOUR, 7),
    ]
    watermark = max(
        max(b.column("_computed_at").to_pylist()) for b in store.changed_since(spend_view, None)
    )
    assert _batches_rows(store.changed_since(spend_view, watermark)) == []
    # Republishing [00:00, 02:00) touches x/1 (row at 00:00) and x/2 (row at 01:00).
    again = [_row("x", 1, 0, 1), _row("x", 2, 1, 6)]
    store.publish(spend_view, stage_rows(settings, spend_view, again, T0, T0 + 2 * HOUR, "r2"))
    changed = _batches_rows(store.changed_since(spend_view, watermark))
    assert [(r["bank"], r["account_id"], r["feature_ts"], r["count_1h"]) for r in changed] == [
        ("x", 1, T0 + 2 * HOUR, 0),
        ("x", 2, T0 + HOUR, 6),
    ]
    assert all(isinstance(r["feature_ts"], datetime) and r["feature_ts"].tzinfo for r in changed)
    assert datetime.now(UTC) > watermark


def test_changed_since_streams_in_batches(settings, spend_view):
    with OfflineStore(settings) as store:
        rows = [_row("b", i, 0, i) for i in range(2500)]
        store.publish(spend_view, stage_rows(settings, spend_view, rows, T0, T0 + HOUR, "r"))
        from jstore.offline import reads

        batches = list(reads.changed_since(store.conn, store.schema, spend_view, None, 1000))
    assert len(batches) > 1
    assert sum(b.num_rows for b in batches) == 2500


def test_reads_of_a_view_never_published_find_nothing_and_create_nothing(settings, card_view):
    with OfflineStore(settings) as store:
        assert store.latest_for_entities(card_view, [("c",)]) == {}
        assert store.history(card_view, {"card_id": "c"}) == []
        assert list(store.changed_since(card_view, None)) == []
        assert not store.layout.exists(store.conn, card_view)


def test_retention_trims_coverage_to_what_is_kept(spend_view):
    from jstore.offline.store import retained_coverage

    kept = spend_view.model_copy(
        update={"definition": spend_view.definition.model_copy(update={"retention": 2 * HOUR})}
    )
    coverage = {kept.table: [(T0, T0 + HOUR), (T0 + 2 * HOUR, T0 + 5 * HOUR)]}
    assert retained_coverage(coverage, [kept], now=T0 + 4 * HOUR) == {
        kept.table: [(T0 + 2 * HOUR, T0 + 5 * HOUR)]
    }
    assert retained_coverage(coverage, [kept], now=T0 + 6 * HOUR) == {
        kept.table: [(T0 + 4 * HOUR, T0 + 5 * HOUR)]
    }
    assert retained_coverage(coverage, [spend_view], now=T0 + 9 * HOUR) == coverage
