"""Fixtures over the real servers that `make services` starts (see scripts/services.py).

Every test gets its own registry database, offline schema, Redis key prefix and lake folder,
so tests never see each other's data and can run in any order.

Tiers (markers, pyproject.toml): a test that uses these fixtures is `integration` (it needs the
servers), one that uses `spark` is `spark`; `e2e` is set by hand on the slow end-to-end tests.
The rest are unit tests: `make test-unit` runs them with no server up.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pyarrow.fs as pafs
import pytest
import redis
from psycopg import sql

from jstore.config import Settings
from jstore.durations import floor_to_step
from jstore.registry import Registry
from jstore.repo import FeatureRepo, load_repo

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_REPO = ROOT / "examples" / "ecommerce"


def _reachable(url_or_hostport: str) -> bool:
    parsed = urlparse(url_or_hostport if "://" in url_or_hostport else f"x://{url_or_hostport}")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((parsed.hostname or "127.0.0.1", parsed.port or 0)) == 0


SERVER_FIXTURES = {"settings", "registry", "postgres"}
"""Fixtures that reach the servers (`postgres`: tests/ingest/test_event_properties.py's own
connection): a test using any of them, directly or through another fixture, is `integration`."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tiers from what a test uses: `make test-unit` runs the tests that need no server
    and no JVM, with no server up."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SERVER_FIXTURES:
            item.add_marker(pytest.mark.integration)
        if "spark" in used:
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def servers() -> None:
    """The four servers answer, or the run stops with how to start them."""
    base = Settings()
    for what, url in (
        ("MongoDB", base.mongo_uri),
        ("PostgreSQL", base.postgres_dsn.get_secret_value()),
        ("Redis", base.redis_url),
        ("Kafka", base.kafka_bootstrap.split(",")[0]),
    ):
        if not _reachable(url):
            pytest.exit(
                f"{what} does not answer at {url}: start the servers with `make services`",
                returncode=3,
            )


@pytest.fixture
def settings(servers: None, tmp_path: Path) -> Iterator[Settings]:
    tag = uuid.uuid4().hex[:10]
    s = Settings(
        project=f"t{tag}",
        mongo_db=f"test_{tag}",
        offline_schema=f"test_{tag}",
        lake_uri=str(tmp_path / "lake"),
        registry_snapshot=tmp_path / "registry_snapshot.json",
    )
    yield s
    with psycopg.connect(s.postgres_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s.offline_schema))
        )
    r = redis.Redis.from_url(s.redis_url)
    for key in r.scan_iter(match=f"{s.project}:*", count=1000):
        r.delete(key)
    r.close()


S3_ENDPOINT = f"http://127.0.0.1:{os.environ.get('JSTORE_S3_PORT', '59000')}"
"""The local S3-compatible server (moto) that `make services` starts."""
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "jstore-test",
    "AWS_SECRET_ACCESS_KEY": "jstore-test",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def s3_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """`settings` with the lake on a fresh bucket of the local S3 server, reached as any S3
    (AWS_* credentials in the environment, JSTORE_S3_ENDPOINT_URL): the bucket is emptied and
    removed afterwards."""
    if not _reachable(S3_ENDPOINT):
        pytest.exit(
            f"S3 does not answer at {S3_ENDPOINT}: start the servers with `make services`",
            returncode=3,
        )
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    admin = pafs.S3FileSystem(
        endpoint_override=S3_ENDPOINT.removeprefix("http://"),
        scheme="http",
        allow_bucket_creation=True,
        allow_bucket_deletion=True,
    )
    admin.create_dir(bucket)
    yield settings.model_copy(
        update={"lake_uri": f"s3://{bucket}/lake", "s3_endpoint_url": S3_ENDPOINT}
    )
    admin.delete_dir(bucket)


def lake_env(settings: Settings) -> dict[str, str]:
    """The environment that puts a subprocess (`jstore ...`, a Spark job) on `settings`' lake."""
    env = {"JSTORE_LAKE_URI": settings.lake_uri}
    if settings.s3_endpoint_url:
        env["JSTORE_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


@pytest.fixture
def now_step() -> datetime:
    """The current hour, read when the test starts. Rows published up to it are fresh for a 2h
    ttl; a constant read when the session starts ages past that ttl in a long session."""
    return floor_to_step(datetime.now(UTC), timedelta(hours=1))


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = Registry(settings)
    yield reg
    reg.client.drop_database(settings.mongo_db)
    reg.close()


@pytest.fixture(scope="session")
def example_repo() -> FeatureRepo:
    return load_repo(EXAMPLE_REPO)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run (a JVM start costs seconds)."""
    from jobs.spark import spark_session

    session = spark_session(
        Settings(), app_name="jstore-tests", master="local[2]", shuffle_partitions=4
    )
    yield session
    session.stop()
    # py4j logs "Closing down clientserver connection" from __del__ at interpreter exit, after
    # pytest closed its streams, which prints a logging traceback below the test summary.
    logging.getLogger("py4j").setLevel(logging.WARNING)
