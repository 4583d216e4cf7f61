"""Benchmark of windowed computation: the user_purchases view (4 functions x 4 windows, step 1h)
over 30 days of purchase events, tiled (jobs/compute_features.py) against a naive baseline.

    .venv/bin/python bench/bench_compute.py                 # 1M events
    .venv/bin/python bench/bench_compute.py --events 10000000

The naive baseline is one aggregation over the raw rows per window and per step (the events
cached in memory, to its advantage); it runs on `--naive-steps` steps and is extrapolated to
the 720 steps of the interval, since running it in full takes hours.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.compute_features import stage_view
from jobs.landing import read_events, source_landing_path
from jobs.spark import spark_session
from jstore.request import read_range
from jstore.config import PROJECT_ROOT, Settings
from jstore.model import ResolvedView, WindowedFeatureView, resolve
from jstore.repo import load_repo

START = datetime(2024, 5, 1, tzinfo=UTC)
DAYS = 30
CATEGORIES = np.array(["books", "games", "food", "garden", "toys", "music", "tools", "sport"])


def user_purchases() -> ResolvedView:
    repo = load_repo(PROJECT_ROOT / "examples" / "ecommerce")
    return resolve(repo.views["user_purchases"], 1, repo.entities, repo.sources)


def write_purchases(
    settings: Settings, view: ResolvedView, events: int, users: int, seed: int = 7
) -> None:
    """Uniform purchases over the read range of the 30 days (30 days + 1 step of lookback
    before them), one file a day."""
    rng = np.random.default_rng(seed)
    first, last = read_range(view, START, START + timedelta(days=DAYS))
    span_us = int((last - first).total_seconds() * 1e6)
    ts_us = np.sort(rng.integers(0, span_us, events)) + int(first.timestamp() * 1e6)
    midnight_us = int(first.replace(hour=0).timestamp() * 1e6)
    day_index = (ts_us - midnight_us) // int(86400 * 1e6)
    for day in np.unique(day_index):
        rows = np.nonzero(day_index == day)[0]
        n = len(rows)
        table = pa.table(
            {
                "user_id": pa.array(np.char.add("u", rng.integers(0, users, n).astype(str))),
                "merchant_id": pa.array(np.char.add("m", rng.integers(0, 500, n).astype(str))),
                "amount": pa.array(np.round(rng.gamma(2.0, 30.0, n), 2)),
                "category": pa.array(CATEGORIES[rng.integers(0, len(CATEGORIES), n)]),
                "ts": pa.array(ts_us[rows], pa.timestamp("us", tz="UTC")),
                "_topic": pa.array(["purchases"] * n),
                "_partition": pa.array(np.zeros(n, np.int32)),
                "_offset": pa.array(rows.astype(np.int64)),
                "_ingested_at": pa.array(ts_us[rows], pa.timestamp("us", tz="UTC")),
            }
        )
        day_start = first.replace(hour=0) + timedelta(days=int(day))
        folder = Path(source_landing_path(settings, "purchases")) / (
            f"event_date={day_start.date().isoformat()}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"purchases-0-{rows[0]}-{rows[-1]}.parquet")


def naive_seconds_per_step(spark, settings: Settings, view: ResolvedView, steps: int) -> float:
    """Per step, one aggregation over the raw rows of each window: the cost the tiles avoid."""
    from pyspark.sql import functions as F

    definition = view.definition
    assert isinstance(definition, WindowedFeatureView)
    end = START + timedelta(days=DAYS)
    read_start, read_end = read_range(view, START, end)
    events = read_events(
        spark,
        source_landing_path(settings, "purchases"),
        view.source,
        view.join_keys,
        read_start,
        read_end,
    ).cache()
    events.count()
    ts = F.col(view.source.timestamp_name)
    began = time.perf_counter()
    for i in range(steps):
        t = START + i * definition.step
        for window in sorted({f.window for f in view.features}):
            in_window = events.where((ts >= F.lit(t - window)) & (ts < F.lit(t)))
            in_window.groupBy(*view.join_keys).agg(
                F.count(F.lit(1)), F.sum("amount"), F.avg("amount"), F.max("amount")
            ).write.format("noop").mode("overwrite").save()
    events.unpersist()
    return (time.perf_counter() - began) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=None, help="default: events / 100")
    parser.add_argument("--naive-steps", type=int, default=12)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    users = args.users or max(1, args.events // 100)
    with tempfile.TemporaryDirectory(prefix="bench_compute_") as tmp:
        settings = Settings(lake_uri=str(Path(tmp) / "lake"))
        began = time.perf_counter()
        view = user_purchases()
        write_purchases(settings, view, args.events, users)
        print(
            f"data: {args.events:,} events, {users:,} users over 60 days, written in "
            f"{time.perf_counter() - began:.1f} s"
        )
        spark = spark_session(settings, "bench-compute", args.master, shuffle_partitions=8)
        spark.sparkContext.setLogLevel("ERROR")
        end = START + timedelta(days=DAYS)
        began = time.perf_counter()
        staged = stage_view(spark, settings, view, START, end, "bench")
        tiled = time.perf_counter() - began
        steps = int((end - START) / view.definition.step)
        print(
            f"tiled: {len(view.features)} features, {steps} steps, {tiled:.1f} s, "
            f"{args.events / tiled:,.0f} events/s, {staged.rows:,} changed rows out"
        )
        per_step = naive_seconds_per_step(spark, settings, view, args.naive_steps)
        naive = per_step * steps
        print(
            f"naive: {per_step:.2f} s per step over {args.naive_steps} steps, "
            f"{naive:.0f} s extrapolated to {steps} steps (no change detection)"
        )
        print(f"ratio: tiled is {naive / tiled:.1f}x faster than naive")
        spark.stop()


if __name__ == "__main__":
    main()
