"""A table source in a database of its own: named by an Airflow Connection id or by an
environment variable holding its DSN, never by its credentials; the password stays off every
command line and out of every log (jstore/ingest/table_database.py).

Given a second database on the running PostgreSQL, owned by a role with a password, its table's
rows of an interval land exactly once, read in JDBC partitions on the timestamp column.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from psycopg import sql

from jstore.config import Settings
from jstore.ingest.extract import ExtractError, extract, read_partitions
from jstore.ingest.landing import read_landing
from jstore.ingest.table_database import SOURCE_DSN_ENV, exported_snapshot, masked
from jstore.model import FieldSpec, TableSource
from jstore.registry import Registry

JSTORE = Path(sys.executable).parent / "jstore"


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, second, tzinfo=UTC)


@dataclass(frozen=True)
class Database:
    name: str
    role: str
    password: str
    dsn: str


@pytest.fixture
def crm(settings: Settings) -> Iterator[Database]:
    """A database `crm_<tag>` owned by a role with a password, holding `sales.customers`."""
    tag = uuid.uuid4().hex[:8]
    name, password = f"crm_{tag}", f"pw-{uuid.uuid4().hex}"
    admin = settings.postgres_dsn.get_secret_value()
    server = urlparse(admin)
    dsn = f"postgresql://{name}:{password}@{server.hostname}:{server.port}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(*[sql.Identifier(name)] * 2))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA sales")
        conn.execute(
            "CREATE TABLE sales.customers (user_id text, tier text, updated_at timestamptz)"
        )
    yield Database(name, name, password, dsn)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def crm_customers(
    table: str | None = "sales.customers", timestamp_column: str = "updated_at", **database: str
) -> TableSource:
    return TableSource(
        name="crm_customers",
        table=table,
        timestamp_column=timestamp_column,
        schema=[
            FieldSpec(name="user_id", dtype="string"),
            FieldSpec(name="tier", dtype="string"),
            FieldSpec(name=timestamp_column, dtype="timestamp"),
        ],
        **database,
    )


def airflow_connection_env(db: Database) -> str:
    """The JSON form of `AIRFLOW_CONN_<ID>` (Airflow's own environment variable)."""
    server = urlparse(db.dsn)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": server.hostname,
            "port": server.port,
            "login": db.role,
            "password": db.password,
            "schema": db.name,
        }
    )


def insert(db: Database, rows: list[tuple[str, str, datetime | None]]) -> None:
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.cursor().executemany("INSERT INTO sales.customers VALUES (%s, %s, %s)", rows)


def test_a_definition_names_at_most_one_database() -> None:
    with pytest.raises(ValueError, match="connection: give at most one of connection and dsn_env"):
        crm_customers(connection="crm", dsn_env="CRM_DSN")
    assert crm_customers().connection is None  # the offline store's database


def test_a_dsn_is_named_with_its_password_masked() -> None:
    assert masked("postgresql://crm:s3cret@db:5432/crm") == "postgresql://crm:***@db:5432/crm"
    assert masked("postgresql://crm@db/crm") == "postgresql://crm@db/crm"


def test_an_extract_reads_at_most_one_partition_per_hour() -> None:
    settings = Settings(extract_partitions=4)
    assert read_partitions(settings, at(1), at(1, 1)) == 1
    assert read_partitions(settings, at(1), at(1, 3)) == 3
    assert read_partitions(settings, at(1), at(3)) == 4
    assert read_partitions(Settings(extract_partitions=1), at(1), at(3)) == 1


@pytest.mark.parametrize(
    ("database", "message"),
    [
        (
            {"connection": "crm_nowhere"},
            "connection: 'crm_nowhere' is not defined (no Airflow Connection of that id)",
        ),
        (
            {"dsn_env": "CRM_DSN_UNSET"},
            "dsn_env: the environment variable CRM_DSN_UNSET is not set",
        ),
    ],
)
def test_a_database_that_is_not_defined_is_refused_naming_it(
    settings: Settings, registry: Registry, monkeypatch, database: dict, message: str
) -> None:
    for name in ("AIRFLOW_CONN_CRM_NOWHERE", "CRM_DSN_UNSET"):
        monkeypatch.delenv(name, raising=False)
    registry.register(crm_customers(**database))
    with pytest.raises(ExtractError) as refused:
        extract(settings, registry, "crm_customers", at(1), at(2))
    assert str(refused.value) == f"source 'crm_customers': {message}"
    assert registry.list_runs(subject="crm_customers") == []  # refused before any run


def test_the_cli_says_so_in_one_line(settings: Settings, registry: Registry, tmp_path) -> None:
    registry.register(crm_customers(connection="crm_nowhere"))
    env = {**os.environ, "JSTORE_MONGO_DB": settings.mongo_db, "JSTORE_LAKE_URI": settings.lake_uri}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    argv = ["extract", "crm_customers", "--start", "2024-05-01", "--end", "2024-05-02"]

    done = subprocess.run([str(JSTORE), *argv], env=env, capture_output=True, text=True)

    assert (done.returncode, done.stderr.strip()) == (
        2,
        "jstore: source 'crm_customers': connection: 'crm_nowhere' is not defined "
        "(no Airflow Connection of that id)",
    )


def test_a_dsn_that_fails_is_refused_naming_it_without_its_password(
    settings: Settings, registry: Registry, crm: Database, monkeypatch
) -> None:
    wrong = crm.dsn.replace(crm.password, "not-the-password")
    monkeypatch.setenv("CRM_DSN", wrong)
    registry.register(crm_customers(dsn_env="CRM_DSN"))
    with pytest.raises(ExtractError) as refused:
        extract(settings, registry, "crm_customers", at(1), at(2))
    message = str(refused.value)
    assert message.startswith(
        f"source 'crm_customers': cannot connect to its database {masked(wrong)}: "
    )
    assert "password authentication failed" in message
    assert "not-the-password" not in message


def test_a_missing_timestamp_column_is_refused_naming_it(
    settings: Settings, registry: Registry, crm: Database, monkeypatch
) -> None:
    monkeypatch.setenv("CRM_DSN", crm.dsn)
    registry.register(crm_customers(timestamp_column="changed_at", dsn_env="CRM_DSN"))
    with pytest.raises(
        ExtractError,
        match=(
            r"^source 'crm_customers': timestamp_column: table sales.customers has no column "
            r"'changed_at' \(columns: user_id, tier, updated_at\)$"
        ),
    ):
        extract(settings, registry, "crm_customers", at(1), at(2))


def test_a_timestamp_column_of_another_type_is_refused_naming_it(
    settings: Settings, registry: Registry, crm: Database, monkeypatch
) -> None:
    monkeypatch.setenv("CRM_DSN", crm.dsn)
    query = "SELECT user_id, tier, tier AS changed_at FROM sales.customers"
    registry.register(
        crm_customers(table=None, query=query, timestamp_column="changed_at", dsn_env="CRM_DSN")
    )
    with pytest.raises(ExtractError) as refused:
        extract(settings, registry, "crm_customers", at(1), at(2))
    assert str(refused.value) == (
        "source 'crm_customers': timestamp_column: 'changed_at' of its query is of type text, "
        "not a timestamp"
    )


def test_a_missing_table_is_refused_naming_it(
    settings: Settings, registry: Registry, crm: Database, monkeypatch
) -> None:
    monkeypatch.setenv("CRM_DSN", crm.dsn)
    registry.register(crm_customers(table="sales.gone", dsn_env="CRM_DSN"))
    with pytest.raises(ExtractError, match=r"table sales.gone cannot be read in .*\*\*\*"):
        extract(settings, registry, "crm_customers", at(1), at(2))


@pytest.fixture
def spawned(monkeypatch) -> list[tuple[list[str], dict[str, str]]]:
    """The command line and environment of every process the launcher starts (it still runs)."""
    calls: list[tuple[list[str], dict[str, str]]] = []
    popen = subprocess.Popen

    def recording(args, *rest, **kwargs):
        calls.append(([str(a) for a in args], dict(kwargs.get("env") or {})))
        return popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)
    return calls


@pytest.mark.e2e
@pytest.mark.spark
def test_a_table_in_its_own_database_lands_exactly_with_its_password_kept_secret(
    settings: Settings,
    registry: Registry,
    crm: Database,
    spawned: list,
    monkeypatch,
    caplog,
    capfd,
) -> None:
    """Named by an Airflow Connection (`AIRFLOW_CONN_<ID>`, read by Airflow's own code), read in
    four partitions of 12 hours: rows on every partition bound land once, rows outside the
    interval or without a time do not, and the password is only in the job's environment."""
    conn_id = f"crm_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", airflow_connection_env(crm))
    source = crm_customers(connection=conn_id)
    registry.register(source)
    bounds = [at(1) + timedelta(hours=12 * i) for i in range(5)]  # the four partitions' bounds
    insert(
        crm,
        [
            ("before", "gold", at(1) - timedelta(microseconds=1)),
            *[(f"u{i}", "gold", ts) for i, ts in enumerate(bounds[:4])],
            ("last", "silver", bounds[4] - timedelta(microseconds=1)),
            ("after", "gold", bounds[4]),
            ("no_time", "gold", None),
        ],
    )
    caplog.set_level(logging.DEBUG)

    result = extract(settings, registry, source.name, at(1), at(3))  # extract_partitions: 4

    landed = sorted(
        (r["user_id"], r["updated_at"]) for r in read_landing(settings, source).to_pylist()
    )
    assert landed == sorted(
        [
            *[(f"u{i}", ts) for i, ts in enumerate(bounds[:4])],
            ("last", bounds[4] - timedelta(microseconds=1)),
        ]
    )
    assert (result.rows, result.table) == (5, "sales.customers")
    (argv, env), *_ = [c for c in spawned if c[0][0].endswith("spark-submit")]
    assert f"spark.jars={settings.jdbc_jar}" in argv
    assert env[SOURCE_DSN_ENV].startswith(f"postgresql://{crm.role}:{crm.password}@")
    assert not any(crm.password in arg for call_argv, _ in spawned for arg in call_argv)
    out, err = capfd.readouterr()
    assert crm.password not in out + err + caplog.text
    run = registry.get_run(result.run_id)
    assert crm.password not in json.dumps(run.model_dump(mode="json"))


@pytest.mark.spark
def test_the_read_is_split_on_the_timestamp_column_and_keeps_every_row_once(
    spark, settings: Settings, crm: Database
) -> None:
    """The job's read (jobs/extract_table.py) over the second database: 3 hourly partitions,
    a row on each bound read once."""
    from jobs.extract_table import read_table

    source = crm_customers(dsn_env="CRM_DSN")
    insert(
        crm, [(f"u{h}", "gold", at(1, h)) for h in range(4)] + [("u_half", "gold", at(1, 1, 30))]
    )

    frame = read_table(spark, settings, source, at(1), at(1, 3), crm.dsn)

    assert frame.rdd.getNumPartitions() == 3
    assert sorted(r.user_id for r in frame.collect()) == ["u0", "u1", "u2", "u_half"]


@pytest.mark.spark
def test_every_partition_reads_one_snapshot_of_the_table(
    spark, settings: Settings, crm: Database
) -> None:
    """Rows written after the extract's snapshot was taken are not read by any partition, even
    by the partitions whose queries start after the write."""
    from jobs.extract_table import read_table

    source = crm_customers(dsn_env="CRM_DSN")
    insert(crm, [("u0", "gold", at(1)), ("u2", "gold", at(1, 2))])
    with exported_snapshot(crm.dsn) as snapshot:
        insert(crm, [("late0", "gold", at(1, 0, 30)), ("late2", "gold", at(1, 2, 30))])
        frame = read_table(spark, settings, source, at(1), at(1, 3), crm.dsn, snapshot)
        assert sorted(r.user_id for r in frame.collect()) == ["u0", "u2"]
    fresh = read_table(spark, settings, source, at(1), at(1, 3), crm.dsn)
    assert sorted(r.user_id for r in fresh.collect()) == ["late0", "late2", "u0", "u2"]
