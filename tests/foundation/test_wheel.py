"""The package is complete when installed: a wheel built from the checkout, installed into a fresh
venv (the locked dependencies, the `spark` extra), runs `jstore --help` and a compute of the
example from outside the checkout: the Spark job and the default expectations come from the
installed package, not from the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from jstore.config import Settings
from jstore.lake_fs import lake_root
from jstore.registry import Registry
from jstore.repo import FeatureRepo
from jstore.spark_submit import job_environment
from tests.compute.windowing_helpers import at, write_landing

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".jstore" / "tools" / "bin" / "uv"


def run(command: list, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{command[:3]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh venv holding the wheel of this checkout and the locked deps."""
    work = tmp_path_factory.mktemp("wheel")
    run([UV, "build", "--wheel", "--out-dir", work / "dist"], ROOT)
    (wheel,) = (work / "dist").glob("jstore-*.whl")
    requirements = work / "requirements.txt"
    export = [UV, "export", "--frozen", "--no-dev", "--extra", "spark", "--no-emit-project"]
    run([*export, "--no-hashes", "--output-file", requirements], ROOT)
    venv = work / "venv"
    run([UV, "venv", "--quiet", "--python", sys.executable, venv], work)
    python = venv / "bin" / "python"
    run([UV, "pip", "install", "--quiet", "--python", python, "-r", requirements], work)
    run([UV, "pip", "install", "--quiet", "--no-deps", "--python", python, wheel], work)
    return venv / "bin"


def test_the_installed_cli_answers_help(installed: Path, tmp_path: Path) -> None:
    out = run([installed / "jstore", "--help"], tmp_path)
    for verb in ("compute", "validate", "publish", "export"):
        assert verb in out


def test_the_installed_package_computes_the_example(
    installed: Path, settings: Settings, registry: Registry, example_repo: FeatureRepo, tmp_path
) -> None:
    registry.apply(example_repo)
    events = [
        {"user_id": "u1", "merchant_id": "m1", "amount": 10.0, "category": "a", "ts": at("10:15")},
        {"user_id": "u1", "merchant_id": "m1", "amount": 30.0, "category": "b", "ts": at("10:45")},
    ]
    write_landing(lake_root(settings), events, registry.get_source("purchases"))
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        **job_environment(settings),
        "JSTORE_SPARK_MASTER": "local[1]",
        "PATH": os.pathsep.join([str(installed), os.environ["PATH"]]),
    }
    del env["JSTORE_EXPECTATIONS_DIR"]  # the default: the suites shipped in the package
    interval = ["--start", at("00:00").isoformat(), "--end", at("4d 00:00").isoformat()]
    out = run([installed / "jstore", "compute", "merchant_sales", *interval], tmp_path, env)
    assert "2 rows staged, validated, 2 published" in out
    query = sql.SQL("SELECT merchant_id, feature_ts, count_1d FROM {} ORDER BY feature_ts").format(
        sql.Identifier(settings.offline_schema, "merchant_sales__v1")
    )
    with psycopg.connect(settings.postgres_dsn.get_secret_value()) as conn:
        assert conn.execute(query).fetchall() == [
            ("m1", at("2d 00:00"), 2),
            ("m1", at("3d 00:00"), 0),
        ]
