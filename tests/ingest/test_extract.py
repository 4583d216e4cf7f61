"""Database sources: rows in [start, end) land once; re-running any interval replaces it.

Rule (jstore/ingest/extract.py): an extract is widened over every landed extract interval it
overlaps and replaces them, so landed intervals never overlap and no row lands twice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
import pytest
from psycopg import sql

from jstore.config import Settings
from jstore.ingest.demo_data import fill_customers
from jstore.ingest.extract import ExtractError, extract, landed_intervals
from jstore.ingest.landing import read_landing
from jstore.lake import landing_dir
from jstore.model import Aggregation, Entity, FieldSpec, TableSource, WindowedFeatureView
from jstore.registry import Registry
from jstore.registry.late import late_intervals
from jstore.registry.leases import acquire_lease

pytestmark = pytest.mark.spark


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def customers(settings: Settings, registry: Registry) -> TableSource:
    table = f"{settings.offline_schema}.customers"
    with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(settings.offline_schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (user_id text, tier text, country text, updated_at timestamptz)"
            ).format(sql.Identifier(settings.offline_schema, "customers"))
        )
    source = customers_in(table)
    registry.register(source)
    return source


def customers_in(table: str) -> TableSource:
    return TableSource(
        name="customers",
        table=table,
        timestamp_column="updated_at",
        schema=[
            FieldSpec(name="user_id", dtype="string"),
            FieldSpec(name="tier", dtype="string"),
            FieldSpec(name="country", dtype="string"),
            FieldSpec(name="updated_at", dtype="timestamp"),
        ],
    )


def insert(settings: Settings, rows: list[tuple[str, str, datetime]]) -> None:
    with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as conn:
        conn.cursor().executemany(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, 'DE', %s)").format(
                sql.Identifier(settings.offline_schema, "customers")
            ),
            rows,
        )


def extract_to_landing(
    spark, settings: Settings, source: TableSource, start: datetime, end: datetime
) -> dict:
    """The Spark job's work, under the source's lease (as `extract` runs it)."""
    from jobs.extract_table import extract_to_landing as job

    with (
        Registry(settings) as registry,
        acquire_lease(registry, source.name, settings.lease_duration_s) as lease,
    ):
        return job(spark, settings, source, start, end, lease.token)


def landed(settings: Settings, source: TableSource) -> list[tuple]:
    return sorted(
        (r["user_id"], r["tier"], r["updated_at"], r["event_date"], r["_topic"], r["_offset"])
        for r in read_landing(settings, source).to_pylist()
    )


def test_rows_in_the_interval_land_by_event_date(
    spark, settings: Settings, customers: TableSource
) -> None:
    insert(
        settings,
        [
            ("u0", "gold", at(1)),
            ("u1", "gold", datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)),
            ("u2", "silver", at(2, 12)),
            ("u3", "bronze", at(3)),
            ("u4", "bronze", at(4)),
        ],
    )

    outcome = extract_to_landing(spark, settings, customers, at(1), at(3))

    table = customers.table
    assert landed(settings, customers) == [
        ("u0", "gold", at(1), date(2024, 5, 1), table, None),
        (
            "u1",
            "gold",
            datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC),
            date(2024, 5, 1),
            table,
            None,
        ),
        ("u2", "silver", at(2, 12), date(2024, 5, 2), table, None),
    ]
    assert (outcome["rows"], outcome["replaced"]) == (3, 0)
    names = sorted(
        p.parent.name + "/" + p.name.rsplit("-", 1)[0]
        for p in landing_dir(settings, "customers").rglob("*.parquet")
    )
    assert set(names) == {
        "event_date=2024-05-01/extract-20240501T000000Z-20240503T000000Z",
        "event_date=2024-05-02/extract-20240501T000000Z-20240503T000000Z",
    }


def test_rerunning_intervals_with_other_bounds_never_duplicates_or_drops_rows(
    spark, settings: Settings, customers: TableSource
) -> None:
    insert(settings, [("u1", "gold", at(1, 6)), ("u2", "gold", at(2, 6)), ("u3", "gold", at(4))])
    extract_to_landing(spark, settings, customers, at(1), at(3))
    extract_to_landing(spark, settings, customers, at(1), at(3))
    assert [u for u, *_ in landed(settings, customers)] == ["u1", "u2"]

    insert(settings, [("u1", "platinum", at(2, 7))])
    outcome = extract_to_landing(spark, settings, customers, at(2), at(4))

    assert (outcome["start"], outcome["end"]) == (at(1).isoformat(), at(4).isoformat())
    assert [(u, t, ts) for u, t, ts, *_ in landed(settings, customers)] == [
        ("u1", "gold", at(1, 6)),
        ("u1", "platinum", at(2, 7)),
        ("u2", "gold", at(2, 6)),
    ]

    extract_to_landing(spark, settings, customers, at(4), at(5))
    assert sorted(landed_intervals(settings, "customers")) == [(at(1), at(4)), (at(4), at(5))]
    assert [u for u, *_ in landed(settings, customers)] == ["u1", "u1", "u2", "u3"]


@pytest.mark.e2e
def test_extract_runs_spark_submit_and_records_the_run(
    settings: Settings, registry: Registry
) -> None:
    customers = customers_in(f"{settings.offline_schema}.demo_customers")
    registry.register(customers)
    assert fill_customers(settings, 20, table=customers.table, start=at(1), end=at(3)) == 20

    result = extract(settings, registry, "customers", at(1), at(2))
    again = extract(settings, registry, "customers", at(1), at(2))

    in_first_day = [r for r in landed(settings, customers) if r[2] < at(2)]
    assert result.rows == again.rows == len(in_first_day) == len(landed(settings, customers))
    assert again.replaced == result.files
    run = registry.get_run(again.run_id)
    assert (run.kind, run.status, run.rows, run.start, run.end) == (
        "extract",
        "success",
        again.rows,
        at(1),
        at(2),
    )
    with pytest.raises(ExtractError, match=r"end: .* must be after start"):
        extract(settings, registry, "customers", at(2), at(1))


@pytest.mark.e2e
def test_extracting_a_published_interval_again_counts_it_for_recompute(
    settings: Settings, registry: Registry
) -> None:
    customers = customers_in(f"{settings.offline_schema}.demo_customers")
    registry.register(customers)
    registry.register(Entity(name="user", join_keys=["user_id"]))
    registry.register(
        WindowedFeatureView(
            name="customer_updates",
            entities=["user"],
            source="customers",
            step="1h",
            aggregations=[Aggregation(function="count", windows=["1d"])],
        )
    )
    registry.add_coverage("customer_updates", 1, at(1), at(1, 6))
    fill_customers(settings, 20, table=customers.table, start=at(1), end=at(3))

    again = extract(settings, registry, "customers", at(1), at(2))  # steps 01:00 on: published
    later = extract(settings, registry, "customers", at(2), at(3))  # steps of day 2: not yet

    assert again.rows > 0 and later.rows > 0
    assert [
        (i.start, i.end, i.events) for i in late_intervals(registry, "customer_updates", 1)
    ] == [(at(1, 1), at(1, 6), again.rows)]
