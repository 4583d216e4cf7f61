"""`jstore land | extract | demo produce` on bad input: one clear line, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.registry import Registry

JSTORE = Path(sys.executable).parent / "jstore"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["land", "nosuch"], "jstore: unknown source 'nosuch'"),
        (
            ["land", "customers"],
            "jstore: source: 'customers' is a table source; use `jstore extract`",
        ),
        (
            ["extract", "customers", "--start", "yesterday", "--end", "2024-05-02T00:00:00Z"],
            "jstore: start: 'yesterday' is not an ISO-8601 timestamp like 2024-05-01T10:00:00Z",
        ),
        (
            ["extract", "purchases", "--start", "2024-05-01", "--end", "2024-05-02"],
            "jstore: source: 'purchases' is a Kafka event source; use `jstore land`",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    settings: Settings, registry: Registry, example_repo, argv: list[str], message: str
) -> None:
    registry.apply(example_repo)
    env = {**os.environ, "JSTORE_MONGO_DB": settings.mongo_db, "JSTORE_LAKE_URI": settings.lake_uri}

    done = subprocess.run([str(JSTORE), *argv], env=env, capture_output=True, text=True)

    assert (done.returncode, done.stderr.strip()) == (2, message)
