"""Database sources into the landing zone: a TableSource's rows with timestamp in [start, end).

Spark reads the table over JDBC (jobs/extract_table.py) and writes the rows in the landing
layout, files named `extract-<start>-<end>-<n>.parquet` (UTC, compact ISO), `_topic` the table
(or the source name for a query), `_partition` and `_offset` null.

The launcher. `extract_job` describes the Spark job with `jstore.spark_submit.spark_job`, as
compute's and export's are: the CLI runs it with `submit` (`JSTORE_SPARK_MASTER`), a DAG task
hands it to `launch` (its SparkSubmitOperator on `spark_default`). The source's database
(jstore/ingest/table_database.py) is resolved and checked here, before the lease is taken; its
DSN travels in the job's environment, never on its command line.

Partitioned reads. The job reads the interval in `read_partitions` JDBC partitions, split evenly
on the timestamp column between the interval's ends (Spark's partitionColumn, lowerBound,
upperBound): every row falls in exactly one partition, and the interval's own filter is pushed
down to every partition's query, so each row of [start, end) is read once. The partitions are
separate queries, so the launcher holds a snapshot of the database open while the job runs
(`exported_snapshot`) and every partition reads that one snapshot, as a single query would.

The replacement rule. Landed extract intervals never overlap. Extracting [s, e) first widens it
to cover every landed extract interval it overlaps (repeatedly, as widening can reach more),
reads that whole interval again, and swaps the new files for all the old ones of those
intervals in one journaled step (jstore/ingest/transaction.py). So re-running an interval,
with the same or different bounds, never duplicates a row and never drops the rows an older,
wider extract held outside [s, e); intervals that only touch ([a, s) and [s, e)) stay apart.

Late rows. An extract of an interval whose steps a view already published (or is publishing)
can change them: rows added, updated or deleted in the table since. Before Spark starts, the
published intervals that events anywhere in the widened interval change are counted in the
registry (jstore/ingest/late.py `affected_range`), with the rows landed once the job is done, so
`jstore recompute` republishes them; a failed job forgets them (nothing changed).

The run holds the source's lease (jstore/registry/leases.py) and passes its token to the Spark
job, whose commit is fenced by it: a job outliving its launcher's lease replaces nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from jstore.config import Settings
from jstore.durations import as_utc
from jstore.ingest.late import LateEvents
from jstore.ingest.runs import fail_dead_runs
from jstore.ingest.table_database import (
    SOURCE_DSN_ENV,
    SourceDatabaseError,
    check_source_table,
    exported_snapshot,
    source_dsn,
)
from jstore.ingest.transaction import LandingTransaction, recover_source
from jstore.lake import landing_dir, landing_partition
from jstore.lake_fs import LakePath
from jstore.model import TableSource
from jstore.registry import Registry, RunRecord, new_run_id
from jstore.registry.late import forget_batch, record_late_events
from jstore.registry.leases import Lease, acquire_lease
from jstore.spark_submit import SparkJob, SparkJobFailed, spark_job, submit, with_jars

EXTRACT_NAME = re.compile(r"^extract-(?P<start>\d{8}T\d{6}Z)-(?P<end>\d{8}T\d{6}Z)-\d+\.parquet$")
STAMP = "%Y%m%dT%H%M%SZ"
PARTITION_SPAN = timedelta(hours=1)
"""The shortest time one JDBC partition of an extract reads (an hourly run reads in one)."""


class ExtractError(Exception):
    """The extract cannot run: not a table source, an empty interval, its database cannot be
    resolved or read (jstore/ingest/table_database.py), or the Spark job failed."""


class ExtractPlan(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    source: str
    requested_start: datetime
    requested_end: datetime
    start: datetime
    """The interval actually read: the requested one widened over overlapping extracts."""
    end: datetime
    replaces: list[LakePath]
    """The landed extract files of the intervals it replaces."""


class ExtractResult(BaseModel):
    run_id: str
    source: str
    table: str
    requested_start: datetime
    requested_end: datetime
    start: datetime
    end: datetime
    rows: int
    files: int
    replaced: int
    duration_s: float


def stamp(ts: datetime) -> str:
    return as_utc(ts).strftime(STAMP)


def landed_intervals(
    settings: Settings, source: str
) -> dict[tuple[datetime, datetime], list[LakePath]]:
    """The landed extract intervals of a source, with their files."""
    intervals: dict[tuple[datetime, datetime], list[LakePath]] = {}
    root = landing_dir(settings, source)
    for path in root.glob("event_date=*/extract-*.parquet"):
        match = EXTRACT_NAME.match(path.name)
        if match:
            key = tuple(
                datetime.strptime(match[k], STAMP).replace(tzinfo=UTC) for k in ("start", "end")
            )
            intervals.setdefault(key, []).append(path)
    return intervals


def plan_extract(settings: Settings, source: str, start: datetime, end: datetime) -> ExtractPlan:
    """Widen [start, end) over the landed extract intervals it overlaps (see the module doc)."""
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise ExtractError(f"end: {end.isoformat()} must be after start {start.isoformat()}")
    for field, ts in (("start", start), ("end", end)):
        if ts.microsecond:
            raise ExtractError(f"{field}: {ts.isoformat()} must be a whole second")
    landed = landed_intervals(settings, source)
    lo, hi, replaced = start, end, set()
    while True:
        overlapping = {iv for iv in landed if iv[0] < hi and lo < iv[1]} - replaced
        if not overlapping:
            break
        replaced |= overlapping
        lo = min(lo, *(iv[0] for iv in overlapping))
        hi = max(hi, *(iv[1] for iv in overlapping))
    return ExtractPlan(
        source=source,
        requested_start=start,
        requested_end=end,
        start=lo,
        end=hi,
        replaces=sorted(p for iv in replaced for p in landed[iv]),
    )


def commit_extract(settings: Settings, plan: ExtractPlan, written: LakePath, lease: Lease) -> int:
    """Swap Spark's output (`written`, partitioned by event_date) for the replaced files in one
    journaled step fenced by `lease`; returns the files landed."""
    txn = LandingTransaction(landing_dir(settings, plan.source) / "_journal", lease)
    parts = written.glob("event_date=*/*.parquet")
    for n, part in enumerate(parts):
        day = datetime.strptime(part.parent.name.removeprefix("event_date="), "%Y-%m-%d").date()
        name = f"extract-{stamp(plan.start)}-{stamp(plan.end)}-{n:05d}.parquet"
        txn.move_on_commit(part, landing_partition(settings, plan.source, day) / name)
    landing = {final for _, final in txn.moves}
    for old in plan.replaces:
        if old not in landing:  # a same-named new file replaces it by its rename
            txn.delete_on_commit(old)
    txn.commit()
    written.rmtree()
    return len(parts)


def read_partitions(settings: Settings, start: datetime, end: datetime) -> int:
    """How many JDBC partitions read [start, end): one per PARTITION_SPAN, at most
    `settings.extract_partitions`."""
    return max(1, min(settings.extract_partitions, (end - start) // PARTITION_SPAN))


def extract_job(
    settings: Settings,
    source: str,
    start: datetime,
    end: datetime,
    result_file: Path,
    lease_token: int,
    dsn: str,
    snapshot: str,
) -> SparkJob:
    """`spark-submit --jars <jdbc jar> jobs/extract_table.py SOURCE --start --end --result-file
    --lease-token --snapshot`, the source database's DSN in the job's environment
    (`SOURCE_DSN_ENV`)."""
    args = [source, "--start", as_utc(start).isoformat(), "--end", as_utc(end).isoformat()]
    args += ["--result-file", str(result_file), "--lease-token", str(lease_token)]
    args += ["--snapshot", snapshot]
    job = with_jars(spark_job("extract_table.py", args, f"jstore-extract-{source}"), settings)
    return replace(job, env_vars={**job.env_vars, SOURCE_DSN_ENV: dsn})


def extract(
    settings: Settings,
    registry: Registry,
    source: str,
    start: datetime,
    end: datetime,
    launch: Callable[[SparkJob], object] | None = None,
) -> ExtractResult:
    """Land the rows of table source `source` in [start, end) with Spark (see above); `launch`
    starts the job (default: spark-submit as a subprocess)."""
    spec = registry.get_source(source)
    if not isinstance(spec, TableSource):
        raise ExtractError(f"source: {source!r} is a Kafka event source; use `jstore land`")
    plan_extract(settings, source, start, end)  # refuses an empty interval before Spark starts
    try:
        dsn = source_dsn(settings, spec)
        check_source_table(dsn, spec)
    except SourceDatabaseError as e:
        raise ExtractError(str(e)) from None
    with acquire_lease(registry, source, settings.lease_duration_s) as lease:
        recover_source(settings, source)
        run = RunRecord(
            run_id=new_run_id("extract"),
            kind="extract",
            subject=source,
            start=as_utc(start),
            end=as_utc(end),
        )
        fail_dead_runs(registry, "extract", source, run.run_id)
        plan = plan_extract(settings, source, start, end)
        changed = LateEvents.of_source(registry, source).affected_range(plan.start, plan.end)
        record_late_events(registry, run.run_id, dict.fromkeys(changed, 0))
        with registry.run(run):
            started = time.monotonic()
            result_file = landing_dir(settings, source) / f"_extract_result_{run.run_id}.json"
            try:
                with exported_snapshot(dsn) as snapshot:
                    job = extract_job(
                        settings, source, start, end, result_file, lease.token, dsn, snapshot
                    )
                    if launch is None:
                        submit(settings, job, description=f"extract of {source}")
                    else:
                        launch(job)
            except Exception as e:
                forget_batch(registry, run.run_id)  # nothing landed: nothing to recompute
                if isinstance(e, SparkJobFailed):
                    raise ExtractError(str(e)) from e
                raise
            outcome = json.loads(result_file.read_text())
            result_file.unlink()
            result = ExtractResult(
                run_id=run.run_id, duration_s=round(time.monotonic() - started, 3), **outcome
            )
            record_late_events(registry, run.run_id, dict.fromkeys(changed, result.rows))
            run.rows = result.rows
            run.details = result.model_dump(mode="json", exclude={"run_id", "source"})
        return result
