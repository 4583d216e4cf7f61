"""A job's driver imports the installed pyspark and py4j, whose bytecode Python caches, not the
zips spark-submit puts first on its PYTHONPATH, when those zips are the installed package's own
(a local run); another Spark's zips stay first."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

from jstore.spark_local import local_driver_env

INSTALLED = Path(next(iter(find_spec("pyspark").submodule_search_locations)))
LIBRARIES = INSTALLED / "python" / "lib"
DRIVER = """
import jobs.installed_pyspark
import pyspark, py4j
print(pyspark.__file__)
print(py4j.__file__)
print(*(p for p in __import__("sys").path if p.endswith(".zip") and "/python/lib/" in p))
"""


def driver_python(spark_zips: list[Path]) -> list[str]:
    """Run a driver's first imports with PYTHONPATH as spark-submit sets it."""
    worktree = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([*map(str, spark_zips), str(worktree)])
    done = subprocess.run(
        [sys.executable, "-c", DRIVER],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_the_installed_packages_zips_are_taken_off_the_path():
    pyspark, py4j, zips = driver_python(sorted(LIBRARIES.glob("*.zip")))

    assert pyspark == str(INSTALLED / "__init__.py")
    assert Path(py4j).parent.parent == INSTALLED.parent
    assert zips == ""


def test_another_sparks_zips_stay_first(tmp_path):
    other = tmp_path / "spark" / "python" / "lib"
    other.mkdir(parents=True)
    for installed in LIBRARIES.glob("*.zip"):
        (other / installed.name).write_bytes(installed.read_bytes())

    pyspark, _, zips = driver_python(sorted(other.glob("*.zip")))

    assert pyspark == str(other / "pyspark.zip" / "pyspark" / "__init__.py")
    assert zips.split() == [str(p) for p in sorted(other.glob("*.zip"))]


def test_a_local_runs_spark_home_is_the_installed_package():
    """Whose zips spark-submit puts first for a local run (jstore.spark_local)."""
    assert Path(local_driver_env()["SPARK_HOME"]).resolve() == INSTALLED.resolve()
