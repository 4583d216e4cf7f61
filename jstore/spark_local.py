"""A local Spark driver that starts fast: the confs `jstore.spark_submit.submit` adds to a job
spark-submit runs on a `local[...]` master (the CLI's compute, export and extract).

Such a driver lives for one run of seconds to minutes on a small machine, where starting the
JVM, loading Spark's classes and JIT-compiling its first job cost more than the work of a small
interval (docs/compute.md, "Where the time of a small run goes"):

- `-XX:TieredStopAtLevel=1`: only the quick C1 compiler, whose code is ready at once; C2's
  background compilation would compete with the job for the machine's cores. A run known to
  read more than `LARGE_RUN_BYTES` (a backfill) keeps C2, whose faster code then repays its
  compilation (`run_size_conf`). `-XX:+UseSerialGC`: no parallel collector threads for a heap
  of a few hundred MB.
- A class-data-sharing archive of the classes the driver loads (`-XX:SharedArchiveFile`): Spark's
  ~15,000 classes are mapped from it instead of being read from jars and verified. It is
  written at the exit of the first successful run that finds none (`-XX:ArchiveClassesAtExit`,
  to a temp name, moved in place after that run) under the user's cache folder, named by what
  the JVM checks before it maps one: the JVM's files, and every jar of Spark's class path by
  size and modification time. A reinstalled Spark (same version, new files) or a new JVM makes
  a new one; a JVM that cannot use an archive warns, maps nothing and runs without it (which
  costs more than having none). Each run that maps an archive touches it; writing a new one
  removes those no run has mapped for `UNUSED_ARCHIVE_DAYS`, and all but the `KEPT_ARCHIVES`
  last mapped (~190 MB each: every fresh virtualenv, a CI clone's for one, installs new jar
  files, and one day of them here left 21 archives, 3.8 GB).
- No Spark UI: the CLI shows the stages' progress itself.
- No Python call sites in the plan (`spark.python.sql.dataFrameDebugging.enabled=false`): with
  them, pyspark wraps every Column and DataFrame call to record its caller in the JVM (the
  active session, the conf, then a set and a clear: about six more Py4J round trips each), so
  building the windows' DataFrame made 11,400 round trips instead of 3,700. An analysis error
  then names the failing expression without the job's line that built it (its Python
  traceback still does).
- `SPARK_HOME` set for spark-submit, which otherwise starts a Python to find it
  (find_spark_home.py), and the driver on the loopback address (`SPARK_LOCAL_IP`), which Spark
  otherwise finds by resolving the hostname and listing the network interfaces (and warns
  about where the hostname resolves to loopback). The JVM that spark-submit starts first, only
  to print the driver's command (`org.apache.spark.launcher.Main`), runs C1 only with the
  serial collector too (`SPARK_LAUNCHER_OPTS`): 0.12 s instead of 0.2. The user's own values
  win.
- A small run's expressions interpreted (`run_size_conf`): a run known to read at most
  `SMALL_RUN_BYTES` generates and compiles no Java code (`spark.sql.codegen.wholeStage=false`,
  `spark.sql.codegen.factoryMode=NO_CODEGEN`), and runs without adaptive execution in 2
  shuffle partitions (`SMALL_RUN_CONF`). The windows' plan compiles about 60 generated
  classes with Janino, 1 to 2 s, plus Janino's own ~480 classes, which come from signed jars
  that no class archive holds, and which C1 then compiles too: more than interpreting a few
  thousand rows costs. The answers are the same bit for bit, the same expressions evaluated in
  the same order (the golden and oracle tests of tests/compute run both ways).

The options go in `spark.driver.defaultJavaOptions`, which Spark puts before a job's own
`spark.driver.extraJavaOptions`. A cluster's jobs (Airflow's spark_default) get none of this.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib.util import find_spec
from pathlib import Path

C1_ONLY = "-XX:TieredStopAtLevel=1"
SERIAL_GC = "-XX:+UseSerialGC"
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}
SMALL_RUN_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
}
"""Spark's expressions and operators evaluated without generated code, and the plan run as
planned in 2 shuffle partitions: adaptive execution would plan the windows' stage again once
the shuffle is written, to coalesce partitions a small run does not have."""
SMALL_RUN_BYTES = 1 << 20
"""The most landed bytes a run reads to run interpreted. Measured on the 2-core machine
(docs/compute.md, "Where the time of a small run goes") with one day of user_purchases, whose
read range holds 31 days of events: at 0.2 MB (3,000 events, over stored tiles) interpreted
saves 2.3 s of the job's 15 s of CPU; re-tiled from raw events at 1.2 MB (30,000 events) both
take 18 to 19 s; at 10 MB (300,000) interpreted takes 71 s against 31."""
LARGE_RUN_BYTES = 16 << 20
"""The landed bytes a run reads beyond which it keeps C2. Measured as above, re-tiled, driver
processes' wall and CPU on a quiet machine: at 10 MB C2 took 17.8 s (32.7 s of CPU, 14.8 of it
compiling) against C1's 16.0 s (24.9); at 31 MB (a million events) 26.1 s (48.1) against 33.1 s
(59.2), its tasks 21 s of CPU against 48. They break even near 15 MB of wall (19 of CPU)."""
ARCHIVE_PREFIX = "spark-classes-"
UNUSED_ARCHIVE_DAYS = 7
KEPT_ARCHIVES = 3


def class_archive() -> Path:
    """Where the archive of this Spark on this JVM is (or will be). Paths are resolved: a
    checkout whose venv is a symlink to another's maps the same archive."""
    java = _java().resolve()
    jars = sorted(_spark_home().resolve().glob("jars/*.jar"))
    files = [java, java.parent.parent / "lib" / "modules", *jars]
    key = "\n".join(f"{f} {_identity(f)}" for f in files)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jstore"
    return cache / f"{ARCHIVE_PREFIX}{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


def local_driver_env() -> dict[str, str]:
    """The environment spark-submit gets for a local driver, under the user's own."""
    return {
        "SPARK_HOME": str(_spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LAUNCHER_OPTS": f"{C1_ONLY} {SERIAL_GC}",
    }


def _java() -> Path:
    """The `java` spark-class runs: $JAVA_HOME/bin/java, else the one on the PATH."""
    home = os.environ.get("JAVA_HOME")
    return Path(home) / "bin" / "java" if home else Path(shutil.which("java") or "java")


def _spark_home() -> Path:
    """The SPARK_HOME spark-submit uses: the variable, else the pyspark package's folder."""
    if home := os.environ.get("SPARK_HOME"):
        return Path(home)
    spec = find_spec("pyspark")
    locations = spec.submodule_search_locations if spec else None
    return Path(next(iter(locations))) if locations else Path()


def _identity(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "-"
    return f"{stat.st_size} {stat.st_mtime_ns}"


def run_size_conf(input_bytes: int | None) -> tuple[dict[str, str], list[str]]:
    """The confs and JIT options of a local run by the landed bytes it reads (None: unknown):
    `SMALL_RUN_CONF` at most `SMALL_RUN_BYTES`, C2 kept beyond `LARGE_RUN_BYTES`, else (and when
    unknown) generated code and C1 only."""
    if input_bytes is not None and input_bytes <= SMALL_RUN_BYTES:
        return dict(SMALL_RUN_CONF), [C1_ONLY]
    if input_bytes is not None and input_bytes > LARGE_RUN_BYTES:
        return {}, []
    return {}, [C1_ONLY]


@contextmanager
def local_driver_conf(input_bytes: int | None = None) -> Iterator[dict[str, str]]:
    """The confs of a fast-starting local driver, for a job run inside the block, reading
    `input_bytes` (None: unknown). Without an archive yet, the driver writes one at its exit,
    kept when the block ends without error."""
    archive = class_archive()
    if archive.exists():
        with suppress(OSError):  # a read-only cache: the archive is still mapped
            os.utime(archive)
        yield _conf(input_bytes, f"-XX:SharedArchiveFile={archive}")
        return
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # no cache folder to write to (a read-only home): run without an archive
        yield _conf(input_bytes)
        return
    written = archive.with_name(f".{archive.stem}.{os.getpid()}.tmp")
    try:
        yield _conf(input_bytes, f"-XX:ArchiveClassesAtExit={written}")
        if written.exists():
            written.replace(archive)
            _remove_unused(archive.parent)
    finally:
        written.unlink(missing_ok=True)


def _remove_unused(cache: Path) -> None:
    """Remove the archives no run has mapped (touched) for UNUSED_ARCHIVE_DAYS, and all but the
    KEPT_ARCHIVES last mapped: those of a Spark or JVM since reinstalled or removed. (A JVM
    mapping one that is removed keeps its mapping.)"""
    too_old = time.time() - UNUSED_ARCHIVE_DAYS * 86400
    mapped: list[tuple[float, Path]] = []
    for archive in cache.glob(f"{ARCHIVE_PREFIX}*.jsa"):
        with suppress(OSError):  # another run removed it first
            mapped.append((archive.stat().st_mtime, archive))
    mapped.sort(reverse=True)
    for rank, (touched, archive) in enumerate(mapped):
        if rank >= KEPT_ARCHIVES or touched < too_old:
            archive.unlink(missing_ok=True)


def _conf(input_bytes: int | None, *archive_option: str) -> dict[str, str]:
    sized, jit = run_size_conf(input_bytes)
    options = " ".join([*jit, SERIAL_GC, *archive_option])
    return {**LOCAL_CONF, **sized, "spark.driver.defaultJavaOptions": options}
