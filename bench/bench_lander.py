"""Lander throughput: events per second landed, next to the raw kafka-python consume rate.

    .venv/bin/python bench/bench_lander.py [--events 1000000] [--partitions 3]

Sends demo purchases (1% malformed) to a fresh topic of the running broker, then in the same
run: (1) consumes the topic with a bare kafka-python consumer (no parsing, no writing), and
(2) lands it with `jstore.ingest.lander.land` (parse, quarantine, Parquet per partition and
event date, journaled renames, registry run). It ends with `ratio lander: <landed events/s /
raw consume events/s>`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from jstore.config import Settings
from jstore.ingest.demo_data import ensure_topic, purchase_messages
from jstore.ingest.lander import land
from jstore.model import EventSource, FieldSpec
from jstore.registry import Registry


def produce(settings: Settings, topic: str, events: int) -> float:
    from kafka import KafkaProducer

    messages, _, _ = purchase_messages(
        events, datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 8, tzinfo=UTC)
    )
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks=1, linger_ms=20, batch_size=512 * 1024
    )
    started = time.perf_counter()
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def raw_consume(settings: Settings, topic: str, expected: int) -> float:
    """Seconds for a bare consumer to read every message of the topic."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=10_000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    started = time.perf_counter()
    seen = 0
    while seen < expected:
        seen += sum(len(batch) for batch in consumer.poll(timeout_ms=1000).values())
    elapsed = time.perf_counter() - started
    consumer.close(autocommit=False)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()

    lake = Path(tempfile.mkdtemp(prefix="bench_lander_"))
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        project=f"bench{tag}",
        mongo_db=f"bench_{tag}",
        lake_uri=str(lake),
        registry_snapshot=lake / "registry_snapshot.json",
    )
    topic = f"bench_purchases_{tag}"
    registry = Registry(settings)
    try:
        registry.register(
            EventSource(
                name="purchases",
                topic=topic,
                timestamp_field="ts",
                schema=[
                    FieldSpec(name="user_id", dtype="string"),
                    FieldSpec(name="merchant_id", dtype="string"),
                    FieldSpec(name="amount", dtype="float64"),
                    FieldSpec(name="category", dtype="string"),
                    FieldSpec(name="ts", dtype="timestamp"),
                ],
            )
        )
        ensure_topic(settings, topic, args.partitions)
        produced_s = produce(settings, topic, args.events)
        print(
            f"produced {args.events:,} events in {produced_s:.1f}s to {topic} "
            f"({args.partitions} partitions)"
        )

        raw_s = raw_consume(settings, topic, args.events)
        raw_rate = args.events / raw_s
        print(f"raw kafka-python consume : {raw_rate:>10,.0f} events/s ({raw_s:.2f}s)")

        started = time.perf_counter()
        result = land(settings, registry, "purchases")
        land_s = time.perf_counter() - started
        handled = result.rows + result.quarantined
        assert handled == args.events, f"landed {handled} of {args.events}"
        land_rate = handled / land_s
        files = sum(1 for _ in (lake / "landing").rglob("*.parquet"))
        print(
            f"jstore land              : {land_rate:>10,.0f} events/s ({land_s:.2f}s; "
            f"{result.rows:,} rows, {result.quarantined:,} quarantined, {files} files)"
        )
        print(f"ratio lander: {land_rate / raw_rate:.2f}")
    finally:
        registry.client.drop_database(settings.mongo_db)
        registry.close()
        shutil.rmtree(lake, ignore_errors=True)
        _delete_topic(settings, topic)


def _delete_topic(settings: Settings, topic: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.delete_topics([topic])
    except KafkaError as e:
        print(f"(topic {topic} not deleted: {e})")
    finally:
        admin.close()


if __name__ == "__main__":
    main()
