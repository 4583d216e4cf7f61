"""Factories of the API tests: an app over the test's own settings, keys, and published rows."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from jstore.config import Settings
from jstore.durations import floor_to_step
from jstore.online import materialize
from jstore.registry import Registry
from serving.app import create_app
from tests.online.online_helpers import HOUR, apply_clicks, publish_rows, row

READ_KEY = "read-secret"
WRITE_KEY = "write-secret"
READ = {"X-API-Key": READ_KEY}
WRITE = {"X-API-Key": WRITE_KEY}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "api_keys": f"{digest(READ_KEY)}:read,{digest(WRITE_KEY)}:write",
            "api_registry_cache_seconds": 0.0,
        }
    )


@pytest.fixture
def client(api_settings: Settings, registry: Registry) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as c:
        yield c


@pytest.fixture
def fresh_clicks(api_settings: Settings, registry: Registry, now_step: datetime):
    """user_clicks published from a checkpoint up to the current step and materialized: u1 and
    u2 have rows."""
    view = apply_clicks(registry)
    publish_rows(
        api_settings,
        registry,
        view,
        floor_to_step(now_step - 2 * HOUR, view.definition.checkpoint_period),
        now_step,
        [
            row("u1", now_step - 2 * HOUR, 1, 5.0, 5.0),
            row("u1", now_step - HOUR, 2, 7.5, 5.0),
            row("u2", now_step - 2 * HOUR, 1, 3.0, 3.0),
        ],
    )
    materialize(api_settings, registry)
    return view


@dataclass
class OwnRedis:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of this test alone (a free port, files in tmp_path), which it may stop."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    process = subprocess.Popen(
        [*argv, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    server = OwnRedis(f"redis://127.0.0.1:{port}/0", process)
    client = redis.Redis.from_url(server.url)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    yield server
    server.stop()
