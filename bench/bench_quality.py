"""Quality gate: how long validating a staged run takes, next to reading it and computing its
statistics alone (the baseline, measured in the same run).

    .venv/bin/python bench/bench_quality.py                 # 100,000 rows of user_purchases v1
    .venv/bin/python bench/bench_quality.py --rows 1000000

A staged run of `--rows` rows (seeded amounts, 5% empty windows) of the example view
user_purchases (16 features, 32 default and user expectations) is written to a scratch lake,
validated twice (the first call also pays for the Great Expectations import and context), and
compared with the baseline. Everything lives under a scratch registry database and lake,
removed at the end.
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
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jstore.config import Settings  # noqa: E402
from jstore.lake import staging_dir  # noqa: E402
from jstore.model import ResolvedView  # noqa: E402
from jstore.quality import validate_staged  # noqa: E402
from jstore.quality.statistics import feature_statistics  # noqa: E402
from jstore.quality.validate import read_staged  # noqa: E402
from jstore.registry import Registry  # noqa: E402
from jstore.repo import load_repo  # noqa: E402
from jstore.staging import StagedRun  # noqa: E402

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

        def baseline() -> dict:
            return feature_statistics(read_staged(runs[1], []), view)

        base, _ = timed(baseline)
        first, _ = timed(lambda: validate_staged(settings, registry, view, runs[0]))
        warm, report = timed(lambda: validate_staged(settings, registry, view, runs[1]))
        print(f"rows {args.rows:,}, {len(view.features)} features")
        print(f"baseline: read + statistics          {base:8.2f} s")
        print(f"validate, first in process (GX load) {first:8.2f} s")
        print(
            f"validate, warm                       {warm:8.2f} s  ({args.rows / warm:,.0f} rows/s)"
        )
        print(f"ratio warm validate / baseline       {warm / base:8.1f} x")
        print(
            f"passed: {report.success}, failed: {len(report.failed)}, report: {report.report_path}"
        )
    finally:
        registry.client.drop_database(settings.mongo_db)
        registry.close()
        shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
