"""`jstore land | extract` and `jstore demo produce`: data into the landing zone."""

from __future__ import annotations

from typing import Annotated

import typer

from jstore.cli.common import UserError, open_registry, timestamp_option
from jstore.cli.demo import demo_app
from jstore.config import get_settings


def land(
    source: Annotated[str, typer.Argument(help="An event source (Kafka topic) of the registry.")],
    max_records: Annotated[
        int | None, typer.Option(help="Stop after this many messages.", min=1)
    ] = None,
    new_generation: Annotated[
        bool,
        typer.Option(help="Accept a broker that lost its log: land its log as a new generation."),
    ] = False,
) -> None:
    """Land one bounded batch of a source's topic into the landing zone (exactly once)."""
    from jstore.ingest.lander import LandingError, land

    with open_registry(LandingError) as registry:
        result = land(get_settings(), registry, source, max_records, new_generation)
    typer.echo(
        f"landed {result.rows} rows of {source} ({result.quarantined} quarantined, "
        f"{result.late} late) in {result.files} files, {result.duration_s:.1f}s  run "
        f"{result.run_id}"
    )
    for partition, rng in sorted(result.partitions.items()):
        span = "nothing new" if rng.first is None else f"offsets {rng.first}..{rng.last}"
        typer.echo(f"  {result.topic}[{partition}] {span} (end {rng.end})")
    if result.new_generations:
        typer.echo(f"  new generation on partitions {result.new_generations}")


def extract(
    source: Annotated[str, typer.Argument(help="A table source of the registry.")],
    start: Annotated[str, typer.Option(help="ISO-8601 UTC, inclusive.")],
    end: Annotated[str, typer.Option(help="ISO-8601 UTC, exclusive.")],
) -> None:
    """Copy a database source's rows with timestamp in [start, end) into the landing zone."""
    from jstore.ingest.extract import ExtractError, extract

    begin, finish = timestamp_option(start, "start"), timestamp_option(end, "end")
    with open_registry(ExtractError) as registry:
        result = extract(get_settings(), registry, source, begin, finish)
    typer.echo(
        f"extracted {result.rows} rows of {source} for [{result.start.isoformat()}, "
        f"{result.end.isoformat()}) into {result.files} files, replacing {result.replaced} "
        f"files  run {result.run_id}"
    )


def produce(
    events: Annotated[int, typer.Option(help="Purchase events to send.", min=1)] = 100_000,
    users: Annotated[int, typer.Option(help="Customers (also filled into PostgreSQL).", min=1)] = (
        10_000
    ),
    start: Annotated[str, typer.Option(help="First event time (ISO-8601).")] = (
        "2024-05-01T00:00:00Z"
    ),
    end: Annotated[str, typer.Option(help="End of event times (ISO-8601).")] = (
        "2024-05-08T00:00:00Z"
    ),
    seed: Annotated[int, typer.Option()] = 7,
    malformed_share: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.01,
) -> None:
    """Send e-commerce purchases to Kafka and fill the customers table (deterministic)."""
    from jstore.ingest.demo_data import fill_customers, produce_purchases

    begin, finish = timestamp_option(start, "start"), timestamp_option(end, "end")
    if finish <= begin:
        raise UserError("end: must be after start")
    settings = get_settings()
    with open_registry() as registry:
        result = produce_purchases(
            settings, registry, events, begin, finish, seed, malformed_share, users
        )
    customers = fill_customers(settings, users, seed, begin, finish)
    typer.echo(
        f"sent {result.events} purchases to topic {result.topic} ({result.malformed} malformed, "
        f"{result.late} late) for {users} users; {customers} customers in public.customers"
    )


def register(app: typer.Typer) -> None:
    app.command()(land)
    app.command()(extract)
    demo_app.command("produce")(produce)
