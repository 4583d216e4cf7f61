"""Quality gate: how long validating a staged run takes, next to the same checks written by hand
as pyarrow compute expressions (the baseline, measured in the same run).

    .venv/bin/python bench/bench_quality.py                 # 100,000 rows of user_purchases v1
    .venv/bin/python bench/bench_quality.py --rows 1000000

A staged run of `--rows` rows (seeded amounts, 5% empty windows) of the example view
user_purchases (16 features, 32 default and user expectations) is written to a scratch lake,
validated twice (the first call also pays for the Great Expectations import and context), and
compared with the baseline: reading the same Parquet, evaluating every check of the suite
(columns, row count, non-null keys, interval, step boundaries, unique keys, counts >= 0,
min <= avg <= max, no NaN/infinity, the view's user expectations) as pyarrow compute
expressions, and computing the same feature statistics the report holds, the floor a
competent engineer would write without a validation framework. It ends with
`ratio quality: <warm validate rows/s / baseline rows/s>`. Everything lives under a scratch
registry database and lake, removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jstore.config import Settings  # noqa: E402
from jstore.lake import staging_dir  # noqa: E402
from jstore.model import ResolvedView  # noqa: E402
from jstore.quality import validate_staged  # noqa: E402
from jstore.quality.statistics import feature_statistics  # noqa: E402
from jstore.quality.suites import ORDER_TOLERANCE, ordered_pairs  # noqa: E402
from jstore.quality.validate import read_staged  # noqa: E402
from jstore.registry import Registry  # noqa: E402
from jstore.repo import load_repo  # noqa: E402
from jstore.staging import StagedRun, staged_columns  # noqa: E402

START = datetime(2024, 5, 1, tzinfo=UTC)
STEPS = 24


def staged_run(settings: Settings, view: ResolvedView, rows: int, run_id: str) -> StagedRun:
    rng = np.random.default_rng(7)
    steps = np.arange(rows) % STEPS
    columns: dict[str, pa.Array] = {
        "user_id": pa.array([f"u{i // STEPS}" for i in range(rows)]),
        "feature_ts": pa.array(
            [START + timedelta(hours=int(s)) for s in steps], pa.timestamp("us", tz="UTC")
        ),
    }
    empty = rng.random(rows) < 0.05
    count = np.zeros(rows, dtype=np.int64)
    for window in ("1h", "1d", "7d", "30d"):
        count = count + np.where(empty, 0, rng.integers(1, 5, rows))  # longer windows hold more
        avg = rng.lognormal(3, 1, rows)
        columns[f"count_{window}"] = pa.array(count, pa.int64())
        columns[f"amount_sum_{window}"] = pa.array(np.where(empty, 0.0, avg * count))
        columns[f"amount_avg_{window}"] = pa.array(avg, mask=empty)
        columns[f"amount_max_{window}"] = pa.array(avg * 1.5, mask=empty)
    order = ["user_id", "feature_ts", *(f.name for f in view.features)]
    path = staging_dir(settings, view.name, run_id)
    path.mkdir(parents=True)
    pq.write_table(pa.table({c: columns[c] for c in order}), path / "part-00000.parquet")
    staged = StagedRun(
        view=view.name,
        version=view.version,
        run_id=run_id,
        start=START,
        end=START + timedelta(hours=STEPS),
        rows=rows,
        path=path,
    )
    staged.write_manifest()
    return staged


def hand_written_checks(staged: StagedRun, view: ResolvedView) -> list[str]:
    """The suite's checks as pyarrow compute expressions; returns the names of those failed."""
    table = read_staged(staged, [])
    keys = [*view.join_keys, "feature_ts"]
    failed = []
    if table.column_names != staged_columns(view):
        failed.append("columns")
    if table.num_rows != staged.rows:
        failed.append("row count")
    failed += [f"{k} not null" for k in keys if table[k].null_count]
    ts = table["feature_ts"]
    start = pa.scalar(staged.start, ts.type)
    end = pa.scalar(staged.end, ts.type)
    if not pc.all(pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))).as_py():
        failed.append("feature_ts in interval")
    step_us = int(view.definition.step.total_seconds() * 1_000_000)
    offsets = pc.subtract(
        pc.cast(ts, pa.int64()), pc.multiply(pc.divide(pc.cast(ts, pa.int64()), step_us), step_us)
    )
    if pc.any(pc.not_equal(offsets, 0)).as_py():
        failed.append("step boundary")
    if table.group_by(keys).aggregate([]).num_rows != table.num_rows:
        failed.append("unique keys")
    for spec in view.features:
        column = table[spec.name]
        if spec.function in ("count", "count_distinct") and pc.any(pc.less(column, 0)).as_py():
            failed.append(f"{spec.name} >= 0")
        if spec.dtype == "float64" and pc.any(pc.invert(pc.is_finite(column))).as_py():
            failed.append(f"{spec.name} finite")
    for low, high in ordered_pairs(view):
        a, b = table[low], table[high]
        slack = pc.multiply(pc.max_element_wise(pc.abs(a), pc.abs(b), 1.0), ORDER_TOLERANCE)
        if pc.any(pc.greater(pc.subtract(a, b), slack)).as_py():
            failed.append(f"{low} <= {high}")
    for name, low, high in (
        ("amount_avg_1d", 0, 10_000),
        ("amount_sum_1d", 0, None),
        ("amount_max_30d", 0, 100_000),
    ):
        column = table[name]
        bad = pc.less(column, low)
        if high is not None:
            bad = pc.or_(bad, pc.greater(column, high))
        if pc.any(bad).as_py():
            failed.append(f"{name} between")
    if pc.any(pc.less(table["count_30d"], table["count_7d"])).as_py():
        failed.append("count_30d >= count_7d")
    feature_statistics(table, view)
    return failed


def timed(action) -> tuple[float, object]:
    began = time.perf_counter()
    result = action()
    return time.perf_counter() - began, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    lake = Path(tempfile.mkdtemp(prefix="jstore-bench-quality-"))
    settings = Settings(mongo_db=f"bench_{uuid.uuid4().hex[:10]}", lake_uri=str(lake))
    settings = settings.model_copy(update={"registry_snapshot": lake / "snapshot.json"})
    registry = Registry(settings)
    try:
        registry.apply(load_repo(ROOT / "examples" / "ecommerce"))
        view = registry.get_view("user_purchases")
        runs = [staged_run(settings, view, args.rows, f"bench-{i}") for i in range(2)]

        base, failed = timed(lambda: hand_written_checks(runs[1], view))
        first, _ = timed(lambda: validate_staged(settings, registry, view, runs[0]))
        warm, report = timed(lambda: validate_staged(settings, registry, view, runs[1]))
        print(f"rows {args.rows:,}, {len(view.features)} features")
        print(f"baseline: read + pyarrow checks + statistics {base:8.2f} s  (failed: {failed})")
        print(f"validate, first in process (GX load) {first:8.2f} s")
        print(
            f"validate, warm                       {warm:8.2f} s  ({args.rows / warm:,.0f} rows/s)"
        )
        print(
            f"passed: {report.success}, failed: {len(report.failed)}, report: {report.report_path}"
        )
        print(f"ratio quality: {base / warm:.2f}")
    finally:
        registry.client.drop_database(settings.mongo_db)
        registry.close()
        shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
