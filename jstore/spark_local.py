"""A local Spark driver that starts fast: the confs `jstore.spark_submit.submit` adds to a job
spark-submit runs on a `local[...]` master (the CLI's compute, export and extract).

Such a driver lives for one run of seconds to minutes on a small machine, where starting the
JVM, loading Spark's classes and JIT-compiling its first job cost more than the work of a small
interval (docs/compute.md, "Where the time of a small run goes"):

- `-XX:TieredStopAtLevel=1`: only the quick C1 compiler, whose code is ready at once; C2's
  background compilation would compete with the job for the machine's cores. `-XX:+UseSerialGC`:
  no parallel collector threads for a heap of a few hundred MB.
- A class-data-sharing archive of the classes the driver loads (`-XX:SharedArchiveFile`): Spark's
  ~15,000 classes are mapped from it instead of being read from jars and verified. It is
  written at the exit of the first successful run that finds none (`-XX:ArchiveClassesAtExit`,
  to a temp name, moved in place after that run) under the user's cache folder, named by the
  Spark version and the JVM, so a new Spark or JVM makes a new one. A JVM that cannot use an
  archive warns and runs without it.
- No Spark UI: the CLI shows the stages' progress itself.

The options go in `spark.driver.defaultJavaOptions`, which Spark puts before a job's own
`spark.driver.extraJavaOptions`. A cluster's jobs (Airflow's spark_default) get none of this.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

LOCAL_DRIVER_JAVA_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
LOCAL_CONF = {"spark.ui.enabled": "false"}


def class_archive() -> Path:
    """Where the archive of this Spark on this JVM is (or will be)."""
    home = os.environ.get("JAVA_HOME")
    java = Path(home) / "bin" / "java" if home else Path(shutil.which("java") or "java")
    java = java.resolve()
    modified = java.stat().st_mtime_ns if java.exists() else 0
    key = f"{version('pyspark')} {java} {modified}"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jstore"
    return cache / f"spark-classes-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


@contextmanager
def local_driver_conf() -> Iterator[dict[str, str]]:
    """The confs of a fast-starting local driver, for a job run inside the block. Without an
    archive yet, the driver writes one at its exit, kept when the block ends without error."""
    archive = class_archive()
    if archive.exists():
        yield _conf(f"-XX:SharedArchiveFile={archive}")
        return
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # no cache folder to write to (a read-only home): run without an archive
        yield _conf()
        return
    written = archive.with_name(f".{archive.stem}.{os.getpid()}.tmp")
    try:
        yield _conf(f"-XX:ArchiveClassesAtExit={written}")
        if written.exists():
            written.replace(archive)
    finally:
        written.unlink(missing_ok=True)


def _conf(*archive_option: str) -> dict[str, str]:
    options = " ".join([*LOCAL_DRIVER_JAVA_OPTIONS, *archive_option])
    return {**LOCAL_CONF, "spark.driver.defaultJavaOptions": options}
