"""Imported first by a job's script: its driver's Python then imports the installed pyspark and
py4j, not the zips spark-submit puts before them.

spark-submit starts the driver's Python with `$SPARK_HOME/python/lib/pyspark.zip` and the py4j
zip first on PYTHONPATH. Python caches no bytecode for modules it imports from a zip, so it
compiled every pyspark module the job imports at every start: importing the compute job took
4.5 s from the zips against 1.7 s from the installed packages at load 6 (the `job start` phase),
and the modules pyspark imports later (its SQL functions, its test utilities) were compiled
again in the job's other phases. A local run's SPARK_HOME is the installed pyspark package
(`jstore.spark_local`), whose zips hold the very modules installed beside them: those zips are
taken off `sys.path`. Zips of another Spark (a cluster's SPARK_HOME) stay first, as Spark
put them, and so does any zip whose package is not installed.
"""

from __future__ import annotations

import sys
from importlib.machinery import PathFinder
from pathlib import Path


def _installed_zips() -> set[str]:
    """The entries of `sys.path` that are zips inside the installed package they would shadow
    (`<site-packages>/pyspark/python/lib/pyspark.zip` for pyspark, for py4j the same folder)."""
    folders = [p for p in sys.path if not p.endswith(".zip")]
    installed = {}
    for name in ("pyspark", "py4j"):
        spec = PathFinder.find_spec(name, folders)
        if spec and spec.submodule_search_locations:
            installed[name] = Path(next(iter(spec.submodule_search_locations)))
    pyspark = installed.get("pyspark")
    if pyspark is None or "py4j" not in installed:
        return set()
    libraries = (pyspark / "python" / "lib").resolve()
    return {p for p in sys.path if p.endswith(".zip") and Path(p).resolve().parent == libraries}


_shadowing = _installed_zips()
sys.path[:] = [p for p in sys.path if p not in _shadowing]
