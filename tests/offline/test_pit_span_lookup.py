"""The span lookup keeps the stored rows the server's span-table join keeps: a stored row of a
key at t is a candidate when an entity row of that key asks a time T in t's checkpoint period
with t <= T (card_view's period is a day)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from jstore.offline.pit_keys import KeyDictionary
from jstore.offline.pit_spans import SpanLookup, Spans, checkpoints_us

T0_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = 1_000_000
HOUR_US = 3600 * US


def _lookup(view, keys: list[str | None], hours: list[int]) -> tuple[SpanLookup, KeyDictionary]:
    dictionary = KeyDictionary([pa.string()])
    spans = Spans(view, dictionary, budget=1_000_000)
    spans.add(dictionary.encode([pa.array(keys, pa.string())]), np.array(hours) * HOUR_US)
    assert len(spans.ranges()) == 1
    return spans.lookup(), dictionary


def test_a_stored_row_is_asked_within_its_period_up_to_the_time_asked(card_view):
    lookup, keys = _lookup(card_view, ["c0", "c1", None], [24 + 10, 24 * 3 + 5, 24 + 20])
    c0, c1 = keys.lookup([pa.array(["c0", "c1"])]).tolist()
    stored = {
        "c0 day 1 00:00": (c0, 24),
        "c0 day 1 09:00": (c0, 24 + 9),
        "c0 day 1 10:00": (c0, 24 + 10),
        "c0 day 1 11:00": (c0, 24 + 11),
        "c0 day 0 23:00": (c0, 23),
        "c0 day 3 04:00": (c0, 24 * 3 + 4),
        "c1 day 3 05:00": (c1, 24 * 3 + 5),
        "c1 day 1 09:00": (c1, 24 + 9),
        "unknown key day 1 09:00": (-1, 24 + 9),
    }
    code = np.array([c for c, _ in stored.values()])
    hours = np.array([h for _, h in stored.values()])
    asked = lookup.asked(code, hours * HOUR_US)
    assert [name for name, keep in zip(stored, asked, strict=True) if keep] == [
        "c0 day 1 00:00",
        "c0 day 1 09:00",
        "c0 day 1 10:00",
        "c1 day 3 05:00",
    ]


def test_no_spans_ask_nothing(card_view):
    lookup, _ = _lookup(card_view, [None], [5])
    assert lookup.asked(np.array([0, -1]), np.array([5, 5]) * HOUR_US).tolist() == [False, False]
    assert lookup.bounds is None


def test_the_bounds_are_the_first_period_start_and_the_last_time_asked(card_view):
    lookup, _ = _lookup(card_view, ["c0", "c1", "c0"], [24 + 10, 24 * 3 + 5, 30])
    assert lookup.bounds == (T0_EPOCH + timedelta(days=1), T0_EPOCH + timedelta(hours=24 * 3 + 5))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_lookup_matches_a_brute_force_oracle(card_view, seed):
    """Keys asked on days far apart (runs split at gaps and at 64-day chunks) and stored rows at
    random hours, some of keys no entity row has."""
    rng = np.random.default_rng(seed)
    keys = [None if k == 12 else f"c{k}" for k in rng.integers(0, 13, 400)]
    hours = rng.integers(0, 24 * 200, 400)
    lookup, dictionary = _lookup(card_view, keys, hours.tolist())
    stored_keys = pa.array([f"c{k}" for k in rng.integers(0, 16, 5000)])
    stored_code = dictionary.lookup([stored_keys])
    stored_us = rng.integers(0, 24 * 200 * HOUR_US, 5000)

    entity_code = dictionary.lookup([pa.array(keys, pa.string())])
    entity_us = hours * HOUR_US
    entity_period = checkpoints_us(entity_us, card_view)
    stored_period = checkpoints_us(stored_us, card_view)
    expected = [
        bool(
            code >= 0
            and np.any((entity_code == code) & (entity_period == period) & (entity_us >= t))
        )
        for code, t, period in zip(stored_code, stored_us, stored_period, strict=True)
    ]
    assert lookup.asked(stored_code, stored_us).tolist() == expected
    assert sum(expected) > 50  # the data asks for some rows, not only none
