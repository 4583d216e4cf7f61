"""A server that is down or refuses ends any `jstore` command with one line and exit code 1.

Each test points one `JSTORE_*` server setting at a port where nothing listens (or at a server
that refuses the password) and runs a command of each verb family that needs that server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.registry import Registry
from jstore.repo import FeatureRepo

ROOT = Path(__file__).resolve().parents[2]
JSTORE = Path(sys.executable).parent / "jstore"


def jstore(settings: Settings, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    test_env = {
        "JSTORE_PROJECT": settings.project,
        "JSTORE_MONGO_DB": settings.mongo_db,
        "JSTORE_OFFLINE_SCHEMA": settings.offline_schema,
        "JSTORE_LAKE_URI": settings.lake_uri,
        "JSTORE_REGISTRY_SNAPSHOT": str(settings.registry_snapshot),
    }
    return subprocess.run(
        [str(JSTORE), *args],
        env={**os.environ, **test_env, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def closed_port() -> int:
    """A loopback port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def applied(registry: Registry, example_repo: FeatureRepo) -> None:
    registry.apply(example_repo)


@pytest.fixture
def entity_file(tmp_path: Path) -> Path:
    path = tmp_path / "entities.csv"
    path.write_text("user_id,merchant_id,event_timestamp\nu000001,m0001,2024-05-02T00:00:00Z\n")
    return path


def assert_one_line(done: subprocess.CompletedProcess, line: str) -> None:
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", [line])


@pytest.mark.parametrize("command", [["list"], ["quality"], ["materialize"]])
def test_mongodb_down(settings: Settings, closed_port: int, command: list[str]) -> None:
    url = f"mongodb://jstore:secret@127.0.0.1:{closed_port}"

    done = jstore(settings, *command, env={"JSTORE_MONGO_URI": url})

    assert_one_line(
        done,
        f"jstore: MongoDB is not reachable at mongodb://jstore@127.0.0.1:{closed_port}: "
        "Connection refused",
    )


def test_postgresql_down_or_refusing_the_password(
    settings: Settings, applied: None, closed_port: int, entity_file: Path, tmp_path: Path
) -> None:
    export = ["export", "--service", "fraud_v1", "--entities", str(entity_file)]
    export += ["--out", str(tmp_path / "out.parquet")]
    down = f"postgresql://jstore:jstore@127.0.0.1:{closed_port}/jstore"
    real = settings.postgres_dsn.get_secret_value()
    wrong_password = real.replace(":jstore@", ":not-the-password@")
    assert wrong_password != real

    assert_one_line(
        jstore(settings, *export, env={"JSTORE_POSTGRES_DSN": down}),
        f"jstore: PostgreSQL is not reachable at postgresql://jstore@127.0.0.1:{closed_port}"
        "/jstore: Connection refused",
    )
    assert_one_line(
        jstore(settings, *export, env={"JSTORE_POSTGRES_DSN": wrong_password}),
        f"jstore: PostgreSQL is not reachable at {real.replace(':jstore@', '@')}: "
        'password authentication failed for user "jstore"',
    )


def test_kafka_down(settings: Settings, applied: None, closed_port: int) -> None:
    """The lander waits for the broker's bootstrap timeout (30 s) before it gives up."""
    done = jstore(
        settings, "land", "purchases", env={"JSTORE_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port}"}
    )

    assert_one_line(
        done,
        f"jstore: Kafka is not reachable at 127.0.0.1:{closed_port}: no broker answered in time",
    )


def test_the_binary_copy_driver_refused_is_postgresql_too(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing and the training-set join copy through ADBC, whose errors are its own."""
    import adbc_driver_postgresql.dbapi as adbc

    from jstore.cli.common import unreachable_server
    from jstore.config import get_settings

    dsn = f"postgresql://jstore:secret@127.0.0.1:{closed_port}/jstore"
    monkeypatch.setenv("JSTORE_POSTGRES_DSN", dsn)
    get_settings.cache_clear()
    try:
        with pytest.raises(adbc.OperationalError) as refused:
            adbc.connect(dsn)
        line = unreachable_server(refused.value)
    finally:
        get_settings.cache_clear()

    assert line == (
        f"PostgreSQL is not reachable at postgresql://jstore@127.0.0.1:{closed_port}/jstore: "
        "Connection refused"
    )


def test_redis_or_postgresql_down_stops_materialize_with_one_line(
    settings: Settings, applied: None, closed_port: int
) -> None:
    """A store every view needs is not one view's failure: one line, not one line per view."""
    redis_down = jstore(
        settings, "materialize", env={"JSTORE_REDIS_URL": f"redis://127.0.0.1:{closed_port}/0"}
    )
    postgres_down = jstore(
        settings,
        "materialize",
        env={"JSTORE_POSTGRES_DSN": f"postgresql://jstore:jstore@127.0.0.1:{closed_port}/jstore"},
    )

    assert (redis_down.returncode, redis_down.stderr.splitlines()[-1]) == (
        1,
        f"jstore: Redis is not reachable at redis://127.0.0.1:{closed_port}/0: Connection refused",
    )
    assert (postgres_down.returncode, postgres_down.stderr.splitlines()[-1]) == (
        1,
        f"jstore: PostgreSQL is not reachable at postgresql://jstore@127.0.0.1:{closed_port}"
        "/jstore: Connection refused",
    )
