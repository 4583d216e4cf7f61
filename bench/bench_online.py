"""Online store: lookup latency through the API next to the raw Redis round trip, and the
materialization rate.

    .venv/bin/python bench/bench_online.py                     # defaults: a few minutes here
    .venv/bin/python bench/bench_online.py --rows 1000000      # the issue's 1M entities x 20

1. Materialize: `--rows` entities x `--features` float features (default 20) published (staged
   run, COPY) into a scratch schema, then `materialize` end to end (offline read + encode +
   Redis), the Redis push alone (`OnlineStore.write_batch` on the same rows in memory), and the
   baseline: the same packed values, already encoded, sent by raw pipelines (MSET + SADD in
   chunks of 5,000, as JStore sends them).
2. Value format: for 100 entities x 50 features, one packed JSON value a key (MGET + json.loads)
   next to a hash of fields a key (pipelined HGETALL + typed decoding of 5,000 values).
3. Serving: uvicorn (one worker) on loopback, wrk (one thread) POSTing `/v1/online` for
   1 entity x 10 features, 1 x 50 and 100 x 50: p50/p99 with one connection (latency without
   queueing), requests/s and server CPU per request with `--connections`; the baseline is the
   same pipeline (meta hash + MGET + decoding) sent to Redis from Python, in the same run.
Everything lives under a scratch project, registry database and schema, removed at the end.
The last lines are `ratio <name>: <x>`: JStore's throughput over its baseline's, measured in the
same run (higher is better), so runs can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jstore.arrow_types import ARROW_TYPES  # noqa: E402
from jstore.config import Settings  # noqa: E402
from jstore.durations import floor_to_step  # noqa: E402
from jstore.lake import staging_dir  # noqa: E402
from jstore.model import Entity, EventSource, FieldSpec, ResolvedView, SqlFeatureView  # noqa: E402
from jstore.online import OnlineStore, materialize  # noqa: E402
from jstore.online.layout import (  # noqa: E402
    BUCKETS,
    bucket,
    index_key,
    meta_key,
    packed_values,
    unpack,
    value_keys,
)
from jstore.online.store import CHUNK  # noqa: E402
from jstore.pipeline import publish as publish_staged  # noqa: E402
from jstore.pipeline import validate  # noqa: E402
from jstore.registry import Registry, new_run_id  # noqa: E402
from jstore.repo import FeatureRepo  # noqa: E402
from jstore.request import ComputeRequest  # noqa: E402
from jstore.staging import StagedRun  # noqa: E402

HOUR = timedelta(hours=1)
SERVED_ENTITIES = 1000


def wide_view(name: str, features: int) -> SqlFeatureView:
    return SqlFeatureView(
        name=name,
        entities=["user"],
        source="events",
        step="1h",
        window="1h",
        query="SELECT user_id FROM input_data GROUP BY user_id",
        features=[FieldSpec(name=f"f{i:02d}", dtype="float64") for i in range(features)],
    )


def setup(settings: Settings, registry: Registry, features: int) -> None:
    source = EventSource(
        name="events",
        topic="events",
        timestamp_field="ts",
        schema=[FieldSpec(name="user_id", dtype="string"), FieldSpec(name="ts", dtype="timestamp")],
    )
    repo = FeatureRepo.of(
        Entity(name="user", join_keys=["user_id"]),
        source,
        wide_view("bench_wide", 50),
        wide_view("bench_mat", features),
    )
    registry.apply(repo)


def feature_table(view: ResolvedView, entities: int, ts: datetime, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns = {
        "user_id": pa.array(np.char.add("u", np.arange(entities).astype(str))),
        "feature_ts": pa.array(np.full(entities, int(ts.timestamp() * 1e6))).cast(
            ARROW_TYPES["timestamp"]
        ),
    }
    for spec in view.features:
        columns[spec.name] = pa.array(np.round(rng.random(entities) * 100, 2))
    return pa.table(columns)


def publish(settings: Settings, registry: Registry, view: ResolvedView, table: pa.Table) -> None:
    start = table.column("feature_ts")[0].as_py()
    run_id = new_run_id("compute")
    path = staging_dir(settings, view.name, run_id)
    ComputeRequest(view=view, start=start, end=start + HOUR, run_id=run_id).write(path)
    pq.write_table(table, path / "part-0.parquet")
    staged = StagedRun(
        view=view.name,
        version=view.version,
        run_id=run_id,
        start=start,
        end=start + HOUR,
        rows=table.num_rows,
        path=path,
    )
    staged.write_manifest()
    validate(settings, registry, staged)
    publish_staged(settings, registry, staged)


def bench_materialize(
    settings: Settings, registry: Registry, rows: int, ratios: dict[str, float]
) -> None:
    view = registry.get_view("bench_mat")
    features = len(view.features)
    ts = floor_to_step(datetime.now(UTC), HOUR) - HOUR
    table = feature_table(view, rows, ts, seed=1)
    started = time.perf_counter()
    publish(settings, registry, view, table)
    print(
        f"  published {rows:,} rows x {features} features in {time.perf_counter() - started:.1f} s"
    )

    started, cpu = time.perf_counter(), time.process_time()
    result = materialize(settings, registry, ["bench_mat"])
    total, total_cpu = time.perf_counter() - started, time.process_time() - cpu
    assert not result.failed, result.failed
    written = result.views[0].written
    print(
        f"  materialize end to end: {written:,} keys in {total:.2f} s = {written / total:,.0f} "
        f"rows/s = {written * features / total:,.0f} feature values/s "
        f"({written * features / total_cpu:,.0f} per CPU-second of this process)"
    )

    batch = table.append_column(
        "_computed_at", pa.array([datetime.now(UTC)] * rows, ARROW_TYPES["timestamp"])
    )
    online = OnlineStore(settings)
    started, cpu = time.perf_counter(), time.process_time()
    for part in batch.to_batches(max_chunksize=50_000):
        online.write_batch(view, part)
    push, push_cpu = time.perf_counter() - started, time.process_time() - cpu
    online.close()
    print(
        f"  Redis push alone (encode + pipelines): {rows / push:,.0f} rows/s = "
        f"{rows * features / push:,.0f} feature values/s "
        f"({rows * features / push_cpu:,.0f} per CPU-second)"
    )

    raw = raw_push(settings, view, table)
    print(
        f"  baseline, raw pipelines of the encoded values (MSET + SADD): {rows / raw:,.0f} rows/s"
        f" = {rows * features / raw:,.0f} feature values/s"
    )
    print(f"  ratio end to end / push alone: {total / push:.2f}x the time")
    ratios["materialize_vs_raw_pipeline"] = raw / total
    ratios["push_vs_raw_pipeline"] = raw / push


def raw_push(settings: Settings, view: ResolvedView, table: pa.Table) -> float:
    """Seconds to send `table`'s packed values, encoded beforehand, by raw pipelines."""
    entities = table.column("user_id").to_pylist()
    values = packed_values(table, view)
    keys = value_keys(settings.project, view, entities)
    batches = []  # as JStore sends them: per 50,000 rows, per bucket, MSET + SADD per chunk
    for i in range(0, len(entities), 50_000):
        by_bucket: list[list[int]] = [[] for _ in range(BUCKETS)]
        for k in range(i, min(i + 50_000, len(entities))):
            by_bucket[bucket(entities[k])].append(k)
        batches.append(by_bucket)
    client = redis.Redis.from_url(settings.redis_url)
    started = time.perf_counter()
    for by_bucket in batches:
        pipe = client.pipeline(transaction=False)
        for number, rows in enumerate(by_bucket):
            index = index_key(settings.project, view.name, view.version, number)
            for j in range(0, len(rows), CHUNK):
                chunk = rows[j : j + CHUNK]
                pipe.mset({keys[k]: values[k] for k in chunk})
                pipe.sadd(index, *[entities[k] for k in chunk])
        pipe.execute()
    seconds = time.perf_counter() - started
    client.close()
    return seconds


def bench_formats(
    settings: Settings, registry: Registry, client: redis.Redis, ratios: dict[str, float]
) -> None:
    view = registry.get_view("bench_wide")
    entities = [f"u{i}" for i in range(100)]
    keys = value_keys(settings.project, view, entities)
    hash_prefix = f"{settings.project}:bench_hash:"
    packed = client.mget(keys)
    pipe = client.pipeline(transaction=False)
    for e, raw in zip(entities, packed, strict=True):
        values = json.loads(raw)
        mapping = {"__ts": values[0]} | {
            f.name: repr(v) for f, v in zip(view.features, values[1:], strict=True)
        }
        pipe.hset(hash_prefix + e, mapping=mapping)
    pipe.execute()

    def read_packed() -> None:
        unpack(client.mget(value_keys(settings.project, view, entities)))

    def read_hash() -> None:
        pipe = client.pipeline(transaction=False)
        for e in entities:
            pipe.hgetall(hash_prefix + e)
        for fields in pipe.execute():
            {k.decode(): (v.decode() if k == b"__ts" else float(v)) for k, v in fields.items()}

    packed_ms = timed_ms(read_packed, 300)
    hash_ms = timed_ms(read_hash, 300)
    client.delete(*[hash_prefix + e for e in entities])
    print(
        f"  packed JSON value (MGET + json.loads): p50 {packed_ms[0]:.3f} ms\n"
        f"  hash of fields (HGETALL x100 + decode 5,000 values): p50 {hash_ms[0]:.3f} ms\n"
        f"  ratio hash / packed: {hash_ms[0] / packed_ms[0]:.2f}x"
    )
    ratios["packed_value_vs_hash_of_fields"] = hash_ms[0] / packed_ms[0]


def timed_ms(call, repeats: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    for _ in range(10):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc): load-independent cost figures."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(settings: Settings, port: int) -> subprocess.Popen:
    env = os.environ | {
        "JSTORE_PROJECT": settings.project,
        "JSTORE_MONGO_DB": settings.mongo_db,
        "JSTORE_OFFLINE_SCHEMA": settings.offline_schema,
        "JSTORE_LAKE_URI": settings.lake_uri,
        "JSTORE_REGISTRY_SNAPSHOT": str(settings.registry_snapshot),
        "JSTORE_API_AUTH_DISABLED": "true",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "serving.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the API did not start")


def wrk(url: str, body: dict, seconds: int, connections: int, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        figures[f"p{pct}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["errors"] = float(errors.group(1)) if errors else 0.0
    return figures


def bench_serving(
    settings: Settings,
    registry: Registry,
    client: redis.Redis,
    args: argparse.Namespace,
    ratios: dict[str, float],
) -> None:
    view = registry.get_view("bench_wide")
    port = free_port()
    api = start_api(settings, port)
    url = f"http://127.0.0.1:{port}/v1/online"
    meta = meta_key(settings.project, view.name, view.version)
    cases = [("1 entity x 10 features", 1, 10), ("1 entity x 50", 1, 50), ("100 x 50", 100, 50)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, entities, features in cases:
                refs = [f"bench_wide:{f.name}" for f in view.features[:features]]
                ids = [f"u{i}" for i in range(entities)]
                body = {"features": refs, "entities": [{"user_id": e} for e in ids]}
                check = urllib.request.Request(
                    url, json.dumps(body).encode(), {"Content-Type": "application/json"}
                )
                answer = json.load(urllib.request.urlopen(check))
                assert set(answer["rows"][0]["statuses"].values()) == {"present"}, answer

                def raw_round_trip(ids: list[str] = ids) -> None:
                    pipe = client.pipeline(transaction=False)
                    pipe.hgetall(meta)
                    pipe.mget(value_keys(settings.project, view, ids))
                    unpack(pipe.execute()[1])

                raw_p50, raw_p99 = timed_ms(raw_round_trip, 500)
                latency = wrk(url, body, args.seconds, 1, Path(tmp))
                cpu = cpu_seconds(api.pid)
                load = wrk(url, body, args.seconds, args.connections, Path(tmp))
                cpu_ms = (cpu_seconds(api.pid) - cpu) * 1000 / (load["rps"] * args.seconds)
                errors = int(latency["errors"] + load["errors"])
                print(
                    f"  {label:24} API p50 {latency['p50']:6.2f} ms  p99 {latency['p99']:6.2f} ms"
                    f" (1 connection)  {load['rps']:5,.0f} req/s ({args.connections} connections)"
                    f"  {cpu_ms:.2f} ms server CPU/req{f'  ({errors} errors)' if errors else ''}\n"
                    f"  {'':24} raw Redis pipeline p50 {raw_p50:6.2f} ms  p99 {raw_p99:6.2f} ms"
                    f"  ratio API/raw p50 {latency['p50'] / raw_p50:.1f}x"
                )
                name = label.replace(" entity", "").replace(" features", "").replace(" ", "")
                ratios[f"lookup_{name}_vs_raw_pipeline"] = raw_p50 / latency["p50"]
    finally:
        api.terminate()
        api.wait()


def cleanup(settings: Settings, registry: Registry, client: redis.Redis) -> None:
    online = OnlineStore(settings, client)
    for name in ("bench_wide", "bench_mat"):
        online.retire(name, 1)
    registry.client.drop_database(settings.mongo_db)
    with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(settings.offline_schema)
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="entities materialized")
    parser.add_argument(
        "--features", type=int, default=20, help="features of the materialized view"
    )
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per case")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as lake:
        settings = Settings(
            project=f"bench{tag}",
            mongo_db=f"bench_{tag}",
            offline_schema=f"bench_{tag}",
            lake_uri=lake,
            registry_snapshot=Path(lake) / "snapshot.json",
        )
        registry = Registry(settings)
        client = redis.Redis.from_url(settings.redis_url)
        try:
            setup(settings, registry, args.features)
            ratios: dict[str, float] = {}
            print(f"== materialize {args.rows:,} entities x {args.features} features")
            bench_materialize(settings, registry, args.rows, ratios)

            wide = registry.get_view("bench_wide")
            ts = floor_to_step(datetime.now(UTC), HOUR) - HOUR
            publish(settings, registry, wide, feature_table(wide, SERVED_ENTITIES, ts, seed=2))
            materialize(settings, registry, ["bench_wide"])
            print("\n== value format, 100 entities x 50 features (Python client, loopback)")
            bench_formats(settings, registry, client, ratios)
            print(
                f"\n== /v1/online via uvicorn + wrk ({args.connections} connections, "
                f"{args.seconds} s a case) vs the raw Redis pipeline"
            )
            if shutil.which("wrk"):
                bench_serving(settings, registry, client, args, ratios)
            else:
                print("  skipped: wrk is not installed (apt-get install wrk)")
            print()
            for name, ratio in ratios.items():
                print(f"ratio {name}: {ratio:.3f}")
        finally:
            cleanup(settings, registry, client)
            registry.close()
            client.close()


if __name__ == "__main__":
    main()
