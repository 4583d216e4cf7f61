"""Benchmark of incremental compute from stored tiles (issue 14): does a scheduled hourly run
cost what is new, not the history behind it?

    .venv/bin/python bench/bench_incremental.py [--events-per-hour 1000] [--users 100000]

`user_purchases` (4 functions x windows 1h 1d 7d 30d, step 1h). Two lakes with the same events
per hour, one file an hour (as the lander writes batches): 1 day and 30 days of history before
T = 2024-06-01 10:00. In each, the run of the previous hour has stored the tiles; then the hour
[T - 1h, T) lands and the hourly run [T, T + 1h) is timed (stage_view: tiles, windows, staged
rows written), from the same stored state each repetition (the median of `--repeat`: on a
shared machine single runs vary by a factor of two). Then the 30
days before T are backfilled as Airflow's chunked ranged runs would (`--chunk-days`), from an
empty tile store, and once more with `--retile`-free runs over stored tiles.

Prints `ratio incremental_30d_vs_1d: <time with 1 day / time with 30 days>` (target >= 0.8).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.compute_features import stage_view
from jobs.spark import spark_session
from jstore.config import PROJECT_ROOT, Settings
from jstore.lake_fs import lake_root
from jstore.model import ResolvedView, resolve
from jstore.repo import load_repo

T = datetime(2024, 6, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


def user_purchases() -> ResolvedView:
    repo = load_repo(PROJECT_ROOT / "examples" / "ecommerce")
    return resolve(repo.views["user_purchases"], 1, repo.entities, repo.sources)


def land_hour(lake: Path, hour: datetime, events: int, users: int, offset: int) -> int:
    """One landed file of `events` purchases in [hour, hour + 1h); returns the next offset."""
    rng = np.random.default_rng(int(hour.timestamp()))
    start_us = int(hour.timestamp() * 1e6)
    ts_us = np.sort(rng.integers(start_us, start_us + 3_600_000_000, events))
    offsets = np.arange(offset, offset + events, dtype=np.int64)
    table = pa.table(
        {
            "user_id": pa.array(np.char.add("u", rng.integers(0, users, events).astype(str))),
            "merchant_id": pa.array(np.char.add("m", rng.integers(0, 500, events).astype(str))),
            "amount": pa.array(np.round(rng.gamma(2.0, 30.0, events), 2)),
            "category": pa.array(np.full(events, "books")),
            "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
            "_topic": pa.array(["purchases"] * events),
            "_partition": pa.array(np.zeros(events, np.int32)),
            "_offset": pa.array(offsets),
            "_ingested_at": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
        }
    )
    folder = lake / "landing" / "purchases" / f"event_date={hour.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"purchases-0-{offset}-{offset + events - 1}.parquet")
    return offset + events


def lake_with_history(root: Path, days: int, events: int, users: int) -> tuple[Path, int]:
    """A lake holding `days` of hourly files before T - 1h; returns it and the next offset."""
    lake = root / f"lake_{days}d"
    offset = 0
    hour = T - timedelta(days=days)
    while hour < T - HOUR:
        offset = land_hour(lake, hour, events, users, offset)
        hour += HOUR
    return lake, offset


def timed(run) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-per-hour", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-days", type=int, nargs="*", default=[1, 7])
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    view = user_purchases()
    with tempfile.TemporaryDirectory(prefix="bench_incremental_") as tmp:
        root = Path(tmp)
        spark = spark_session(Settings(), "bench-incremental", args.master, shuffle_partitions=8)
        spark.sparkContext.setLogLevel("ERROR")
        runs = {}
        for days in (1, 30):
            lake, offset = lake_with_history(root, days, args.events_per_hour, args.users)
            settings = Settings(lake_uri=str(lake))
            setup = timed(lambda s=settings: stage_view(spark, s, view, T - HOUR, T, "previous"))
            land_hour(lake, T - HOUR, args.events_per_hour, args.users, offset)
            shutil.copytree(lake / "tiles", root / f"tiles_{days}d")
            runs[days] = settings
            print(
                f"history {days:>2} d: {days * 24 * args.events_per_hour:,} events, "
                f"tiles stored by the previous hour's run in {setup:.1f} s"
            )
        seconds_of: dict[int, list[float]] = {1: [], 30: []}
        for i in range(args.repeat):
            for days, settings in runs.items():
                shutil.rmtree(lake_root(settings) / "tiles")
                shutil.copytree(root / f"tiles_{days}d", lake_root(settings) / "tiles")
                seconds = timed(
                    lambda s=settings, r=f"h{i}": stage_view(spark, s, view, T, T + HOUR, r)
                )
                seconds_of[days].append(seconds)
                print(f"hourly run [T, T + 1h), {days:>2} d of history: {seconds:.2f} s")
        median = {days: statistics.median(times) for days, times in seconds_of.items()}
        print(
            f"median of {args.repeat}: 1 d {median[1]:.2f} s, 30 d {median[30]:.2f} s "
            f"(best: {min(seconds_of[1]):.2f} s, {min(seconds_of[30]):.2f} s)"
        )

        settings = runs[30]
        for chunk_days in args.chunk_days:
            for state in ("empty tile store", "stored tiles"):
                if state == "empty tile store":
                    shutil.rmtree(lake_root(settings) / "tiles")
                chunk = timedelta(days=chunk_days)
                start, total, count = T - timedelta(days=30), 0.0, 0
                while start < T:
                    end = min(start + chunk, T)
                    total += timed(
                        lambda s=start, e=end: stage_view(spark, settings, view, s, e, "backfill")
                    )
                    start, count = end, count + 1
                print(
                    f"backfill 30 d of hourly steps, {count} ranged runs of {chunk_days} d, "
                    f"{state}: {total:.1f} s"
                )
        spark.stop()
        print(f"ratio incremental_30d_vs_1d: {median[1] / median[30]:.2f}")


if __name__ == "__main__":
    main()
