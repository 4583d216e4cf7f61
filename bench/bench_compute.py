"""Benchmark of windowed computation: the user_purchases view (4 functions x 4 windows, step 1h)
over 30 days of purchase events, JStore's Spark job (jobs/compute_features.py) against the same
rows computed by hand in DuckDB, in the same run.

    .venv/bin/python bench/bench_compute.py                 # 1M events
    .venv/bin/python bench/bench_compute.py --events 10000000

The baseline is the query a competent engineer would write for this view (hourly tiles, the
candidate points, RANGE frames over both, the value one step back from a second frame), run
with 2 threads like local[2]. Its rows are checked equal to JStore's before its time counts:
same rows, same integers and nulls, floats within a relative 1e-12 (DuckDB's segment trees sum
a window in another order than Spark's frames, so the last bits may differ). The last line is
`ratio compute_<n>m: <JStore events/s / baseline events/s>`. `--naive-steps N` also times the
old strawman (one aggregation over the raw rows per window and per step, on N steps).
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
from jstore.config import PROJECT_ROOT, Settings
from jstore.model import ResolvedView, WindowedFeatureView, resolve
from jstore.repo import load_repo
from jstore.request import read_range

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


def duckdb_rows(landing_path: str, view: ResolvedView, start: datetime, end: datetime) -> pa.Table:
    """The changed and checkpoint rows of user_purchases (key `user_id`; count, and sum, avg,
    max of `amount`), written by hand in DuckDB:
    hourly tiles, candidate points (a tile entering or leaving a window, every midnight), then
    RANGE frames (DuckDB's segment trees) over tiles and points, the value at `t` against the
    value at `t - step` from a frame one step back."""
    import duckdb

    definition = view.definition
    step = int(definition.step.total_seconds())
    period = int(definition.checkpoint_period.total_seconds())
    windows = sorted({int(f.window.total_seconds()) for f in view.features})
    first, last = (int(t.timestamp()) for t in read_range(view, start, end))
    s, e = int(start.timestamp()), int(end.timestamp())
    first_checkpoint = -(-s // period) * period
    ts = view.source.timestamp_name
    frames = {}
    for w in windows:
        frames[f"now_{w}"] = f"{w - step} PRECEDING AND CURRENT ROW"
        frames[f"prev_{w}"] = f"{w} PRECEDING AND {step} PRECEDING"
    aggregates = [
        f"{merge}({column}) OVER (PARTITION BY user_id ORDER BY p RANGE BETWEEN {frames[frame]})"
        f" AS {column}_{frame}"
        for frame in frames
        for column, merge in [("c", "sum"), ("n", "sum"), ("s", "sum"), ("m", "max")]
    ]

    def feature(f, prev: str) -> str:
        frame = f"{prev}_{int(f.window.total_seconds())}"
        match f.function:
            case "count":
                return f"coalesce(c_{frame}, 0)"
            case "sum":
                return f"coalesce(s_{frame}, 0.0)"
            case "avg":
                return f"CASE WHEN n_{frame} > 0 THEN s_{frame} / n_{frame} END"
            case "max":
                return f"m_{frame}"
        raise ValueError(f.function)

    changed = " OR ".join(
        f"{feature(f, 'now')} IS DISTINCT FROM {feature(f, 'prev')}" for f in view.features
    )
    empty = " AND ".join(
        f"{feature(f, 'now')} IS NOT DISTINCT FROM {f.empty_value!r}".replace("None", "NULL")
        for f in view.features
    )
    columns = [
        f"{feature(f, 'now')}::{'BIGINT' if f.dtype == 'int64' else 'DOUBLE'} AS {f.name}"
        for f in view.features
    ]
    offsets = ", ".join(str(o) for o in sorted({0, *windows}))
    con = duckdb.connect()
    con.execute("SET threads = 2")
    query = f"""
    WITH events AS (
        SELECT user_id, {ts} AS ts, amount FROM read_parquet('{landing_path}/*/*.parquet')
        WHERE {ts} >= to_timestamp({first}) AND {ts} < to_timestamp({last}) AND user_id IS NOT NULL
          AND _offset IS NULL
        UNION ALL
        SELECT DISTINCT ON (_topic, _partition, _offset) user_id, {ts}, amount
        FROM read_parquet('{landing_path}/*/*.parquet')
        WHERE {ts} >= to_timestamp({first}) AND {ts} < to_timestamp({last}) AND user_id IS NOT NULL
          AND _offset IS NOT NULL
    ), tiles AS (
        SELECT user_id, epoch_us(ts) // {step * 1_000_000} * {step} AS p,
               count(*) AS c, count(amount) AS n, sum(amount) AS s, max(amount) AS m
        FROM events GROUP BY ALL
    ), points AS (
        SELECT DISTINCT user_id, p + o AS p FROM tiles, unnest([{offsets}]) AS o(o)
        WHERE p + o + {step} >= {s} AND p + o + {step} < {e}
        UNION
        SELECT user_id, cp - {step}
        FROM (SELECT DISTINCT user_id FROM tiles), range({first_checkpoint}, {e}, {period}) r(cp)
    ), frame AS (
        SELECT user_id, p, c, n, s, m, false AS point FROM tiles
        UNION ALL
        SELECT user_id, p, NULL, NULL, NULL, NULL, true FROM points
    ), evaluated AS (
        SELECT user_id, p, point, {", ".join(aggregates)} FROM frame
    )
    SELECT user_id, to_timestamp(p + {step}) AS feature_ts,
           {", ".join(columns)}
    FROM evaluated
    WHERE point AND (({changed}) OR ((p + {step}) % {period} = 0 AND NOT ({empty})))
    """
    return con.sql(query).to_arrow_table()


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


def same_rows(jstore: pa.Table, baseline: pa.Table) -> str:
    """Raises unless both tables hold the same rows; says whether floats matched bit for bit or
    only within a relative 1e-12 (DuckDB sums a window in its segment tree's order)."""
    order = [("user_id", "ascending"), ("feature_ts", "ascending")]
    ours, theirs = jstore.sort_by(order), baseline.sort_by(order)
    assert ours.num_rows == theirs.num_rows, f"{ours.num_rows:,} rows, baseline {theirs.num_rows:,}"
    exact = True
    for name in ours.column_names:
        a, b = ours[name].combine_chunks(), theirs[name].combine_chunks()
        assert a.is_null().equals(b.is_null()), f"{name}: nulls differ"
        if pa.types.is_floating(a.type):
            x, y = a.fill_null(0).to_numpy(), b.fill_null(0).to_numpy()
            assert np.allclose(x, y, rtol=1e-12, atol=0), f"{name}: values differ"
            exact = exact and bool(np.array_equal(x, y))
        else:
            assert a.cast(b.type).equals(b), f"{name}: values differ"
    return "bit for bit" if exact else "floats within a relative 1e-12"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=None, help="default: events / 100")
    parser.add_argument(
        "--naive-steps", type=int, default=0, help="also time the naive strawman on N steps"
    )
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    users = args.users or max(1, args.events // 100)
    name = f"compute_{args.events / 1e6:g}m"
    with tempfile.TemporaryDirectory(prefix="bench_compute_") as tmp:
        settings = Settings(lake_uri=str(Path(tmp) / "lake"))
        began = time.perf_counter()
        view = user_purchases()
        write_purchases(settings, view, args.events, users)
        print(
            f"data: {args.events:,} events, {users:,} users over 60 days, written in "
            f"{time.perf_counter() - began:.1f} s"
        )
        spark = spark_session(settings, "bench-compute", args.master)
        spark.sparkContext.setLogLevel("ERROR")
        end = START + timedelta(days=DAYS)
        began = time.perf_counter()
        staged = stage_view(spark, settings, view, START, end, "bench")
        tiled = time.perf_counter() - began
        steps = int((end - START) / view.definition.step)
        print(
            f"jstore: {len(view.features)} features, {steps} steps, {tiled:.1f} s, "
            f"{args.events / tiled:,.0f} events/s, {staged.rows:,} rows out"
        )
        landing = source_landing_path(settings, "purchases")
        began = time.perf_counter()
        baseline = duckdb_rows(landing, view, START, end)
        by_hand = time.perf_counter() - began
        print(
            f"duckdb by hand: {by_hand:.1f} s, {args.events / by_hand:,.0f} events/s, "
            f"{baseline.num_rows:,} rows out"
        )
        equal = same_rows(pq.read_table(staged.path).select(baseline.column_names), baseline)
        print(f"same rows: yes, {equal}")
        if args.naive_steps:
            per_step = naive_seconds_per_step(spark, settings, view, args.naive_steps)
            print(
                f"naive strawman: {per_step:.2f} s per step over {args.naive_steps} steps, "
                f"{per_step * steps:.0f} s extrapolated to {steps} steps"
            )
        spark.stop()
        print(f"ratio {name}: {by_hand / tiled:.3f}")


if __name__ == "__main__":
    main()
