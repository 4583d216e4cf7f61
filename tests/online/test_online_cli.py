"""`jstore materialize` and `jstore serve` as a user runs them (a subprocess, JSTORE_* env)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from jstore.config import Settings
from tests.online.online_helpers import HOUR, T0, apply_clicks, publish_rows, row
from tests.online.test_materialize_failures import two_views_one_broken

pytestmark = pytest.mark.e2e  # a Python start per command: slow on a loaded machine
JSTORE = [sys.executable, "-c", "from jstore.cli import main; main()"]


def env_of(settings: Settings) -> dict[str, str]:
    return os.environ | {
        "JSTORE_PROJECT": settings.project,
        "JSTORE_MONGO_DB": settings.mongo_db,
        "JSTORE_OFFLINE_SCHEMA": settings.offline_schema,
        "JSTORE_LAKE_URI": settings.lake_uri,
        "JSTORE_REGISTRY_SNAPSHOT": str(settings.registry_snapshot),
        "JSTORE_API_AUTH_DISABLED": "true",
    }


def test_materialize_prints_what_it_pushed_and_refuses_unknown_views(settings, registry):
    view = apply_clicks(registry)
    publish_rows(settings, registry, view, T0, T0 + HOUR, [row("u1", T0, 1, 5.0, 5.0)])

    done = subprocess.run(
        [*JSTORE, "materialize", "user_clicks"],
        env=env_of(settings),
        capture_output=True,
        text=True,
    )
    unknown = subprocess.run(
        [*JSTORE, "materialize", "nope"], env=env_of(settings), capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:5] == ["user_clicks", "v1", "written", "1", "deleted"]
    assert (unknown.returncode, unknown.stderr) == (2, "jstore: unknown feature view 'nope'\n")


def test_serve_answers_on_the_given_port(settings, registry, tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [*JSTORE, "serve", "--port", str(port)], env=env_of(settings), cwd=tmp_path
    )
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                    ready = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait()
    assert ready["ready"] is True
    assert set(ready["servers"]) == {"redis", "postgres", "mongodb"}


def test_materialize_pushes_every_view_it_can_and_exits_1_naming_each_failed_one(
    settings, registry
):
    two_views_one_broken(settings, registry)

    done = subprocess.run(
        [*JSTORE, "materialize", "user_clicks", "user_spend"],
        env=env_of(settings),
        capture_output=True,
        text=True,
    )

    assert done.returncode == 1
    assert [line.split()[:4] for line in done.stdout.splitlines()] == [
        ["user_spend", "v1", "written", "1"]
    ]
    failures = [line for line in done.stderr.splitlines() if line.startswith("jstore:")]
    assert len(failures) == 1
    assert failures[0].startswith(
        "jstore: materialize user_clicks v1 failed: UndefinedColumn: column t.amount_max_1h"
    )
