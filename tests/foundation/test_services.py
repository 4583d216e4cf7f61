"""scripts/services.py: up, status, down and up again, on private ports and a private folder.

These tests never touch the shared servers: each runs the script with its own `JSTORE_HOME` (a
fresh temporary folder) and its own free ports, and stops only what it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

from jstore.config import Settings
from jstore.registry import Registry
from jstore.repo import FeatureRepo

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services.py"
NAMES = ["postgres", "redis", "kafka", "mongo", "s3"]
PORT_VARS = {"postgres": "PG", "redis": "REDIS", "kafka": "KAFKA", "mongo": "MONGO", "s3": "S3"}
LISTENER = """
import os, socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["LISTEN_ON"])))
s.listen()
print("listening", flush=True)
time.sleep(600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class PrivateServers:
    home: Path
    ports: dict[str, int]

    @property
    def env(self) -> dict[str, str]:
        ports = {f"JSTORE_{PORT_VARS[n]}_PORT": str(p) for n, p in self.ports.items()}
        return {**os.environ, "JSTORE_HOME": str(self.home), **ports}

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(SERVICES), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def lines(self, *args: str) -> list[str]:
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return [" ".join(line.split()) for line in done.stdout.splitlines()]

    def settings(self) -> Settings:
        return Settings(
            mongo_uri=f"mongodb://127.0.0.1:{self.ports['mongo']}",
            postgres_dsn=f"postgresql://jstore:jstore@127.0.0.1:{self.ports['postgres']}/jstore",
            redis_url=f"redis://127.0.0.1:{self.ports['redis']}/0",
            kafka_bootstrap=f"127.0.0.1:{self.ports['kafka']}",
            registry_snapshot=self.home / "registry_snapshot.json",
            lake_uri=str(self.home / "lake"),
        )


@pytest.fixture
def private() -> Iterator[PrivateServers]:
    # Not pytest's tmp_path: its parents are private to this user, and PostgreSQL runs as the
    # `postgres` user when the tests run as root.
    home = Path(tempfile.mkdtemp(prefix="jstore-services-"))
    home.chmod(0o755)
    servers = PrivateServers(home, {name: free_port() for name in NAMES})
    yield servers
    servers.run("down")
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def stranger() -> Iterator[tuple[int, subprocess.Popen]]:
    """A plain socket listener that scripts/services.py did not start, on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER],
        env={**os.environ, "LISTEN_ON": str(port)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
    yield port, proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.mark.e2e
def test_up_twice_down_and_up_again_keeps_the_data(
    private: PrivateServers, example_repo: FeatureRepo
):
    p = private.ports
    assert private.lines("up") == [f"{n} started on 127.0.0.1:{p[n]}" for n in NAMES]
    assert private.lines("up") == [f"{n} already running on 127.0.0.1:{p[n]}" for n in NAMES]
    status = private.lines("status")
    assert [line.split()[:3] for line in status] == [[n, "up", f"127.0.0.1:{p[n]}"] for n in NAMES]
    pids = {line.split()[0]: line.split()[3] for line in status}
    for name in NAMES:
        assert pids[name] == f"pid={(private.home / 'run' / f'{name}.pid').read_text().strip()}"
        assert (private.home / "log" / f"{name}.log").exists()

    settings = private.settings()
    registry = Registry(settings)
    registry.apply(example_repo)
    registry.close()
    with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    online = redis.Redis.from_url(settings.redis_url)
    online.set("kept", "42")
    online.close()

    assert private.lines("down") == [f"{n} stopped" for n in reversed(NAMES)]
    assert not any(port_open(port) for port in p.values())
    assert not list((private.home / "run").glob("*.pid"))
    stopped = private.run("status")
    assert stopped.returncode == 1
    assert [line.split()[:2] for line in stopped.stdout.splitlines()] == [
        [n, "down"] for n in NAMES
    ]
    assert private.lines("down") == [f"{n} not running (or not ours)" for n in reversed(NAMES)]

    assert private.lines("up") == [f"{n} started on 127.0.0.1:{p[n]}" for n in NAMES]
    registry = Registry(settings)
    assert [(v.name, v.version) for v in registry.list_views()] == [
        ("merchant_sales", 1),
        ("user_big_spends", 1),
        ("user_categories", 1),
        ("user_purchases", 1),
    ]
    assert not registry.plan(example_repo).has_changes
    registry.close()
    with psycopg.connect(settings.postgres_dsn.get_secret_value()) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
    online = redis.Redis.from_url(settings.redis_url)
    assert online.get("kept") == b"42"
    online.close()


@pytest.mark.e2e
def test_the_registry_keeps_what_was_acknowledged_when_mongo_is_killed(
    private: PrivateServers, example_repo: FeatureRepo
):
    assert private.lines("up", "mongo") == [f"mongo started on 127.0.0.1:{private.ports['mongo']}"]
    registry = Registry(private.settings())
    registry.apply(example_repo)
    registry.set_watermark("land:purchases", {"0": 99})
    registry.close()
    pid = int((private.home / "run" / "mongo.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    assert private.run("status", "mongo").stdout.split()[:2] == ["mongo", "down"]
    assert private.lines("up", "mongo") == [f"mongo started on 127.0.0.1:{private.ports['mongo']}"]
    registry = Registry(private.settings())
    assert len(registry.list_views()) == 4
    assert registry.get_watermark("land:purchases") == {"0": 99}
    registry.close()


def test_down_never_stops_a_server_it_did_not_start(private: PrivateServers, stranger):
    port, listener = stranger
    private.ports["redis"] = port
    assert private.lines("down", "redis") == ["redis not running (or not ours)"]
    # Even a pid file naming the stranger (a stale file, a reused pid) does not make it ours.
    (private.home / "run").mkdir(parents=True)
    (private.home / "run" / "redis.pid").write_text(f"{listener.pid}\n")
    assert private.lines("down", "redis") == ["redis not running (or not ours)"]
    status = private.run("status", "redis")
    assert (status.returncode, status.stdout.split()[:2]) == (1, ["redis", "down"])
    assert listener.poll() is None
    assert port_open(port)


def test_up_refuses_a_port_taken_by_a_server_it_did_not_start(private: PrivateServers, stranger):
    port, listener = stranger
    private.ports["redis"] = port
    refused = private.run("up", "redis")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"redis: port {port} is taken by a server this script did not start; "
        "stop it or choose another port (JSTORE_REDIS_PORT)"
    ]
    assert listener.poll() is None


def test_an_unknown_server_name_is_refused(private: PrivateServers):
    refused = private.run("up", "cassandra")
    assert refused.returncode == 2
    assert "invalid choice: 'cassandra'" in refused.stderr
