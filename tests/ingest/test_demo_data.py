"""Demo purchases: deterministic, long-tailed, with a share of malformed events the lander
quarantines."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from jstore.config import Settings
from jstore.ingest.demo_data import merchant_id, produce_purchases, purchase_messages, user_id
from jstore.ingest.lander import land
from jstore.model import EventSource
from jstore.registry import Registry

START, END = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)


def test_the_same_seed_gives_the_same_messages_and_another_seed_others() -> None:
    first = purchase_messages(2000, START, END, seed=3)
    assert purchase_messages(2000, START, END, seed=3) == first
    assert purchase_messages(2000, START, END, seed=4)[0] != first[0]


def test_purchases_are_long_tailed_and_mostly_well_formed() -> None:
    messages, malformed, late = purchase_messages(20_000, START, END, malformed_share=0.01)
    events = []
    for _, value in messages:
        try:
            events.append(json.loads(value))
        except json.JSONDecodeError:
            continue
    per_user = Counter(e.get("user_id") for e in events).most_common()
    top_share = sum(n for _, n in per_user[:100]) / len(events)
    assert top_share > 0.3  # 1% of 10,000 users make a third of the purchases
    amounts = sorted(e["amount"] for e in events if isinstance(e.get("amount"), float))
    assert 15 < amounts[len(amounts) // 2] < 40  # log-normal, median about 25
    assert 150 < malformed < 250
    assert 250 < late < 550


def test_the_first_user_and_merchant_are_the_busiest() -> None:
    """`make demo` looks up u000001 with m0001: both must have purchases to show."""
    messages, _, _ = purchase_messages(20_000, START, END, malformed_share=0.0)
    events = [json.loads(value) for _, value in messages]
    assert Counter(e["user_id"] for e in events).most_common(1)[0][0] == user_id(1)
    assert Counter(e["merchant_id"] for e in events).most_common(1)[0][0] == merchant_id(1)


def test_produced_purchases_land_and_the_malformed_are_quarantined(
    settings: Settings, registry: Registry, source: EventSource
) -> None:
    produced = produce_purchases(settings, registry, 600, START, END, malformed_share=0.05)

    landed = land(settings, registry, "purchases")

    assert landed.quarantined == produced.malformed > 0
    assert landed.rows == 600 - produced.malformed
    assert sorted(landed.partitions) == [0, 1, 2]
