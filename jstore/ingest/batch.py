"""One landed batch: messages parsed, split into one file per (partition, event date) and one
quarantine file per partition, and written in one transaction (jstore/ingest/transaction.py).

Late events (jstore/ingest/late.py) are counted in the registry per affected published interval
before the transaction commits, so no crash can land them without their count
(jstore/registry/late.py).

Every file carries, in its Parquet metadata, the fingerprint of its last record, so that a
later run can check the broker still holds the log it was landed from (jstore/ingest/probe.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jstore.config import Settings
from jstore.ingest.events import BadEvent, EventParser
from jstore.ingest.late import LateEvents
from jstore.ingest.offsets import landed_file_name
from jstore.ingest.probe import FINGERPRINT_KEY, fingerprint
from jstore.ingest.quarantine import QuarantinedEvents
from jstore.ingest.transaction import LandingTransaction, crash_point
from jstore.lake import landing_dir, landing_partition
from jstore.registry import Registry
from jstore.registry.late import AffectedInterval, record_late_events
from jstore.registry.leases import Lease


@dataclass
class LandedBatch:
    rows: int
    quarantined: int
    files: int
    late: int
    """Good events that change a published interval of a view of the source."""
    late_since: datetime | None


def land_batch(
    settings: Settings,
    registry: Registry,
    parser: EventParser,
    messages: list[Any],
    bases: dict[int, int],
    lease: Lease,
) -> LandedBatch:
    """Land Kafka `messages` (in offset order per partition); `bases` maps each partition to
    its generation's base (landing offset = base + broker offset). The files are committed
    only while `lease` is still the source's (LeaseLost otherwise, nothing landed).

    Late events are counted twice, both times idempotently per batch: before the files are
    final (so no crash lands them uncounted), and again after (a compute that started in
    between listed the landing zone without them)."""
    lease.confirm()  # a holder that lost the source stops before counting late events
    source = parser.source
    topic = source.topic
    ingested_at = datetime.now(UTC)
    rows: dict[tuple[int, date], list[tuple[int, dict]]] = defaultdict(list)
    bad: dict[int, QuarantinedEvents] = {}
    last_record: dict[tuple[int, date | None], Any] = {}
    first_offset: dict[int, int] = {}
    for m in messages:
        offset = bases[m.partition] + m.offset
        first_offset.setdefault(m.partition, offset)
        try:
            row = parser.parse(m.value, ingested_at)
        except BadEvent as e:
            bad.setdefault(m.partition, QuarantinedEvents(topic, m.partition)).add(
                offset, m.key, m.value, str(e)
            )
            last_record[(m.partition, None)] = m
            continue
        day = row[source.timestamp_name].date()
        rows[(m.partition, day)].append((offset, row))
        last_record[(m.partition, day)] = m
    late = _count_late_events(registry, parser, rows, first_offset)
    crash_point("before_write")
    txn = LandingTransaction(landing_dir(settings, source.name) / "_journal", lease)
    schema = parser.landing_schema()
    for (partition, day), landed in rows.items():
        table = _landing_table(schema, parser, partition, landed, ingested_at)
        final = landing_partition(settings, source.name, day) / landed_file_name(
            topic, partition, landed[0][0], landed[-1][0]
        )
        temp = txn.temp_for(final)
        pq.write_table(
            _stamped(table, last_record[(partition, day)]), temp.path, filesystem=temp.fs
        )
    for partition, events in bad.items():
        final = events.folder(settings, source.name, ingested_at) / landed_file_name(
            topic, partition, events.offsets[0], events.offsets[-1]
        )
        table = _stamped(events.table(ingested_at), last_record[(partition, None)])
        temp = txn.temp_for(final)
        pq.write_table(table, temp.path, filesystem=temp.fs)
    crash_point("after_late_events")
    txn.commit()
    late |= _count_late_events(registry, parser, rows, first_offset)
    return LandedBatch(
        rows=sum(map(len, rows.values())),
        quarantined=sum(len(events.offsets) for events in bad.values()),
        files=len(txn.moves),
        late=len(late),
        late_since=min(late.values(), default=None),
    )


def _count_late_events(
    registry: Registry,
    parser: EventParser,
    rows: dict[tuple[int, date], list[tuple[int, dict]]],
    first_offset: dict[int, int],
) -> dict[tuple[int, int], datetime]:
    """Record, per partition of the batch, how many of its events change each published (or
    publishing) interval; returns the late events' times by (partition, offset)."""
    source = parser.source
    late_events = LateEvents.of_source(registry, source.name)
    counts: dict[int, Counter[AffectedInterval]] = defaultdict(Counter)
    late: dict[tuple[int, int], datetime] = {}
    for (partition, _), landed in rows.items():
        for offset, row in landed:
            ts = row[source.timestamp_name]
            changed = late_events.affected(ts)
            if changed:
                counts[partition].update(changed)
                late[(partition, offset)] = ts
    for partition, counted in counts.items():
        record_late_events(
            registry, f"{source.topic}-{partition}-{first_offset[partition]}", counted
        )
    return late


def _landing_table(
    schema: pa.Schema,
    parser: EventParser,
    partition: int,
    landed: list[tuple[int, dict]],
    ingested_at: datetime,
) -> pa.Table:
    columns: dict[str, list] = {
        f.name: [row[f.name] for _, row in landed] for f in parser.source.schema_
    }
    n = len(landed)
    columns["_topic"] = [parser.source.topic] * n
    columns["_partition"] = [partition] * n
    columns["_offset"] = [offset for offset, _ in landed]
    columns["_ingested_at"] = [ingested_at] * n
    return pa.table(columns, schema=schema)


def _stamped(table: pa.Table, last_record: Any) -> pa.Table:
    """`table` with the fingerprint of its last record in the Parquet metadata."""
    return table.replace_schema_metadata({FINGERPRINT_KEY: fingerprint(last_record)})
