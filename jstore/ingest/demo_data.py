"""Realistic e-commerce data for the example repo: purchases on Kafka, customers in PostgreSQL.

Purchases: user activity is long-tailed (user k buys with weight 1/k^1.1, a Zipf law), amounts
are log-normal (median about 25), categories skewed, times uniform over [start, end) in order
except a small share that arrives late (up to 6 hours behind), and `malformed_share` of the
messages is broken in one of the ways the lander quarantines. Everything follows from `seed`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from psycopg import sql
from pydantic import BaseModel

from jstore.config import Settings
from jstore.model import EventSource
from jstore.registry import Registry

DEMO_START = datetime(2024, 5, 1, tzinfo=UTC)
DEMO_END = datetime(2024, 5, 8, tzinfo=UTC)
CATEGORIES = ["groceries", "electronics", "fashion", "home", "books", "toys", "beauty", "sports"]
CATEGORY_WEIGHTS = [0.30, 0.12, 0.16, 0.12, 0.10, 0.06, 0.08, 0.06]
TIERS = ["bronze", "silver", "gold", "platinum"]
TIER_WEIGHTS = [0.60, 0.25, 0.12, 0.03]
COUNTRIES = ["DE", "FR", "NL", "ES", "IT", "PL", "SE", "US"]
LATE_SHARE = 0.02
MALFORMED_KINDS = ["not_json", "missing_field", "mistyped", "unparsable_ts", "absurd_ts"]
TOPIC_PARTITIONS = 3


class ProduceResult(BaseModel):
    """What `produce_purchases` sent: how many messages to which topic, how many of them
    malformed and how many late."""

    topic: str
    events: int
    malformed: int
    late: int


def user_id(n: int) -> str:
    return f"u{n:06d}"


def merchant_id(n: int) -> str:
    """The merchant of sales rank `n`: m0001 sells most, as u000001 buys most."""
    return f"m{n:04d}"


def produce_purchases(
    settings: Settings,
    registry: Registry,
    events: int,
    start: datetime = DEMO_START,
    end: datetime = DEMO_END,
    seed: int = 7,
    malformed_share: float = 0.01,
    users: int = 10_000,
    source: str = "purchases",
) -> ProduceResult:
    """Send `events` purchase messages to the source's topic (created if missing), keyed by user."""
    from kafka import KafkaProducer

    spec = registry.get_source(source)
    if not isinstance(spec, EventSource):
        raise ValueError(f"source: {source!r} is not a Kafka event source")
    ensure_topic(settings, spec.topic)
    messages, malformed, late = purchase_messages(events, start, end, seed, malformed_share, users)
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
    )
    try:
        for key, value in messages:
            producer.send(spec.topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()
    return ProduceResult(topic=spec.topic, events=events, malformed=malformed, late=late)


def purchase_messages(
    events: int,
    start: datetime,
    end: datetime,
    seed: int = 7,
    malformed_share: float = 0.01,
    users: int = 10_000,
) -> tuple[list[tuple[bytes, bytes]], int, int]:
    """The (key, value) messages of `produce_purchases`, and how many are malformed and late."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, users + 1) ** 1.1
    buyers = rng.choice(users, size=events, p=weights / weights.sum()) + 1
    merchants = (rng.zipf(1.6, size=events) - 1) % 500 + 1
    amounts = np.round(rng.lognormal(mean=3.2, sigma=1.0, size=events), 2)
    categories = rng.choice(len(CATEGORIES), size=events, p=CATEGORY_WEIGHTS)
    span = (end - start).total_seconds()
    offsets = np.sort(rng.uniform(0, span, size=events))
    late = rng.random(events) < LATE_SHARE
    offsets = np.where(late, np.maximum(offsets - rng.uniform(0, 6 * 3600, events), 0), offsets)
    broken = rng.random(events) < malformed_share
    kinds = rng.choice(len(MALFORMED_KINDS), size=events)
    messages = []
    for i in range(events):
        event = {
            "user_id": user_id(int(buyers[i])),
            "merchant_id": merchant_id(int(merchants[i])),
            "amount": float(amounts[i]),
            "category": CATEGORIES[categories[i]],
            "ts": (start + timedelta(seconds=float(offsets[i]))).isoformat(),
        }
        value = _break(event, MALFORMED_KINDS[kinds[i]]) if broken[i] else json.dumps(event)
        messages.append((event["user_id"].encode(), value.encode()))
    return messages, int(broken.sum()), int((late & ~broken).sum())


def _break(event: dict, kind: str) -> str:
    if kind == "not_json":
        return json.dumps(event)[:-7]
    if kind == "missing_field":
        return json.dumps({k: v for k, v in event.items() if k != "merchant_id"})
    if kind == "mistyped":
        return json.dumps({**event, "amount": str(event["amount"])})
    if kind == "unparsable_ts":
        return json.dumps({**event, "ts": "yesterday at noon"})
    return json.dumps({**event, "ts": "1970-01-01T00:00:00+00:00"})


def ensure_topic(settings: Settings, topic: str, partitions: int = TOPIC_PARTITIONS) -> None:
    """Create `topic` with a few partitions unless it exists."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    try:
        if topic not in admin.list_topics():
            admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def fill_customers(
    settings: Settings,
    users: int,
    seed: int = 7,
    start: datetime = DEMO_START,
    end: datetime = DEMO_END,
    table: str = "public.customers",
) -> int:
    """Create the customers table if missing and upsert `users` customers; returns rows written.

    Columns: user_id (primary key), tier, country, updated_at (uniform in [start, end)).
    """
    rng = np.random.default_rng(seed)
    tiers = rng.choice(len(TIERS), size=users, p=TIER_WEIGHTS)
    countries = rng.choice(len(COUNTRIES), size=users)
    seconds = rng.uniform(0, (end - start).total_seconds(), size=users)
    rows = [
        (
            user_id(n + 1),
            TIERS[tiers[n]],
            COUNTRIES[countries[n]],
            start + timedelta(seconds=round(float(seconds[n]), 3)),
        )
        for n in range(users)
    ]
    schema, _, name = table.rpartition(".")
    schema = schema or "public"
    target = sql.Identifier(schema, name)
    with psycopg.connect(settings.postgres_dsn.get_secret_value()) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (user_id text PRIMARY KEY, tier text NOT NULL, "
                "country text NOT NULL, updated_at timestamptz NOT NULL)"
            ).format(target)
        )
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (user_id, tier, country, updated_at) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (user_id) DO UPDATE SET tier = excluded.tier, "
                    "country = excluded.country, updated_at = excluded.updated_at"
                ).format(target),
                rows,
            )
    return len(rows)
