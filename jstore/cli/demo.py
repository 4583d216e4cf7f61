"""`jstore demo`: the whole flow on generated data, run through the Airflow DAGs, figures printed.

The DAGs run in this process with `dag.test()` against a local Airflow (SQLite metadata under
`.jstore/airflow`, migrated first), exactly as the scheduler would run them: land, extract, one
compute run per view over the last two days (a run may name its interval), materialize, and an
export; then one online lookup. The data ends at the current hour, so lookups are fresh.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from jstore.cli.common import open_registry, user_errors
from jstore.config import PROJECT_ROOT, Settings, get_settings
from jstore.durations import floor_to_step
from jstore.lake import exports_dir, quality_dir
from jstore.registry import Registry
from jstore.repo import load_repo

EXAMPLE_REPO = PROJECT_ROOT / "examples" / "ecommerce"
AIRFLOW_HOME = PROJECT_ROOT / ".jstore" / "airflow"
DAYS = 2
SERVICE = "fraud_v1"

demo_app = typer.Typer(
    invoke_without_command=True,
    help="The whole flow on generated data (subcommands run single steps of it).",
)


@contextmanager
def step(title: str) -> Iterator[None]:
    typer.echo(f"\n== {title}")
    began = time.monotonic()
    yield
    typer.echo(f"   ({time.monotonic() - began:.1f} s)")


def latest_run(registry: Registry, kind: str, subject: str) -> str:
    runs = registry.list_runs(kind=kind, subject=subject, limit=1)
    if not runs:
        return "no run recorded"
    run = runs[0]
    if run.status == "failed":
        return "failed: " + (run.error or "").strip().replace("\n", "\n     ")
    return f"{run.status}, {run.rows if run.rows is not None else '-'} rows"


@demo_app.callback()
def demo(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(help="Purchase events to generate.", min=1)] = 20_000,
    users: Annotated[int, typer.Option(help="Distinct users (and customers).", min=1)] = 500,
) -> None:
    """Apply the example repo, then run every DAG over two days of generated purchases."""
    if ctx.invoked_subcommand is not None:
        return
    from jstore.ingest.demo_data import fill_customers, merchant_id, produce_purchases, user_id
    from jstore.orchestration import prepare_local_airflow, run_dag

    settings = get_settings()
    began = time.monotonic()
    now = datetime.now(UTC)
    end = floor_to_step(now, timedelta(hours=1))
    day_end = floor_to_step(now, timedelta(days=1))
    start = day_end - timedelta(days=DAYS)
    with user_errors():
        definitions = load_repo(EXAMPLE_REPO)
    with open_registry() as registry:
        with step("apply examples/ecommerce (writes the registry snapshot the DAGs read)"):
            typer.echo(str(registry.apply(definitions)))

        with step(f"local Airflow: metadata database in {AIRFLOW_HOME}"):
            os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
            prepare_local_airflow(AIRFLOW_HOME)

        with step(
            f"generate {events} purchases of {users} users in [{start:%F %H:%M}, {end:%F %H:%M})"
        ):
            produced = produce_purchases(settings, registry, events, start, end, users=users)
            customers = fill_customers(settings, users, start=start, end=end)
            typer.echo(
                f"   {produced.events} events on topic {produced.topic} ({produced.malformed} "
                f"malformed, {produced.late} late); {customers} customers in public.customers"
            )

        with step("DAG jstore_land_purchases"):
            run_dag("jstore_land_purchases", conf={"max_records": 2 * events})
            typer.echo(f"   land: {latest_run(registry, 'land', 'purchases')}")

        interval = {"start": start.isoformat(), "end": end.isoformat()}
        with step("DAG jstore_extract_customers"):
            run_dag("jstore_extract_customers", logical_date=now, conf=interval)
            typer.echo(f"   extract: {latest_run(registry, 'extract', 'customers')}")

        for view in registry.list_views():
            view_end = floor_to_step(end, view.definition.step)
            # From a checkpoint, so that every time of the computed range can be answered.
            view_start = floor_to_step(
                view_end - timedelta(days=DAYS), view.definition.checkpoint_period
            )
            conf = {"start": view_start.isoformat(), "end": view_end.isoformat()}
            with step(
                f"DAG jstore_compute_{view.name} [{view_start:%F %H:%M}, {view_end:%F %H:%M})"
            ):
                try:
                    run_dag(f"jstore_compute_{view.name}", logical_date=now, conf=conf)
                    published = latest_run(registry, "publish", view.name)
                except RuntimeError as e:  # a failed suite blocks the publish: show why, go on
                    typer.echo(f"   {e}")
                    published = "not run"
                typer.echo(
                    f"   validate: {latest_run(registry, 'validate', view.name)}; "
                    f"publish: {published}"
                )

        with step("DAG jstore_materialize"):
            run_dag("jstore_materialize")
            for view in registry.list_views():
                typer.echo(f"   {view.name}: {latest_run(registry, 'materialize', view.name)}")

        with step(f"online lookup of service {SERVICE}"):
            print_lookup(
                settings,
                registry,
                [
                    {"user_id": user_id(1), "merchant_id": merchant_id(1)},
                    {"user_id": "nobody", "merchant_id": "nowhere"},
                ],
            )

        out = exports_dir(settings) / f"{SERVICE}-{end:%Y%m%dT%H}.parquet"
        with step(f"DAG jstore_export_training_set ({SERVICE})"):
            entities = write_entity_rows(settings, users, start, end)
            conf = {"service": SERVICE, "entities": str(entities), "out": str(out)}
            run_dag("jstore_export_training_set", conf=conf)
            typer.echo(f"   export: {latest_run(registry, 'export', SERVICE)} -> {out}")

    typer.echo(f"\nQuality reports: {quality_dir(settings)} (served by `jstore serve` at /quality)")
    typer.echo(f"Training set:    {out}")
    typer.echo(f"Done in {time.monotonic() - began:.0f} s.")


def print_lookup(settings: Settings, registry: Registry, entities: list[dict]) -> None:
    from jstore.online.lookup import OnlineLookup
    from jstore.online.store import OnlineReader

    async def lookup() -> dict:
        reader = OnlineReader(settings)
        try:
            result = await OnlineLookup(settings, registry, reader).lookup([], SERVICE, entities)
        finally:
            await reader.close()
        return result.body

    body = asyncio.run(lookup())
    for row in body["rows"]:
        typer.echo(f"   {row['entity']}")
        for ref, value in row["values"].items():
            typer.echo(f"     {ref:45} {value!s:>12}  {row['statuses'][ref]}")


def write_entity_rows(settings: Settings, users: int, start: datetime, end: datetime) -> Path:
    """A thousand (user, time) rows in the demo's range: what a data scientist would label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jstore.ingest.demo_data import merchant_id, user_id

    rng = random.Random(7)
    seconds = int((end - start).total_seconds())
    rows = [
        (
            user_id(rng.randrange(users)),
            merchant_id(rng.randrange(1, 20)),
            start + timedelta(seconds=rng.randrange(seconds)),
        )
        for _ in range(1000)
    ]
    path = exports_dir(settings) / "demo_entities.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    users_col, merchants, times = zip(*rows, strict=True)
    table = pa.table(
        {
            "user_id": list(users_col),
            "merchant_id": list(merchants),
            "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
            "label": [rng.random() < 0.05 for _ in rows],
        }
    )
    pq.write_table(table, path)
    return path


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
