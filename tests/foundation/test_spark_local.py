"""A local driver's confs: C1 only, serial GC, no UI, and a class-data-sharing archive that the
first successful run writes and every later run maps, one per install of Spark and the JVM; a
small run interpreted, a large one with C2."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from jstore.spark_local import (
    KEPT_ARCHIVES,
    LARGE_RUN_BYTES,
    SMALL_RUN_BYTES,
    SMALL_RUN_CONF,
    UNUSED_ARCHIVE_DAYS,
    class_archive,
    local_driver_conf,
    local_driver_env,
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "jstore"


def java_options(conf: dict[str, str]) -> list[str]:
    return conf["spark.driver.defaultJavaOptions"].split()


def test_the_first_run_writes_the_archive_and_later_runs_map_it(cache) -> None:
    archive = class_archive()
    assert archive.parent == cache

    with local_driver_conf() as conf:
        *fixed, dump = java_options(conf)
        written = dump.removeprefix("-XX:ArchiveClassesAtExit=")
        assert written != str(archive)  # a temp name: no run maps a half-written archive
        (cache / written.rpartition("/")[2]).write_bytes(b"archive")  # what the JVM does
    assert fixed == ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.python.sql.dataFrameDebugging.enabled"] == "false"
    assert archive.read_bytes() == b"archive"

    with local_driver_conf() as conf:
        assert java_options(conf)[-1] == f"-XX:SharedArchiveFile={archive}"


@pytest.mark.parametrize(
    ("input_bytes", "interpreted", "jit"),
    [
        (0, True, ["-XX:TieredStopAtLevel=1"]),
        (SMALL_RUN_BYTES, True, ["-XX:TieredStopAtLevel=1"]),
        (SMALL_RUN_BYTES + 1, False, ["-XX:TieredStopAtLevel=1"]),
        (None, False, ["-XX:TieredStopAtLevel=1"]),
        (LARGE_RUN_BYTES, False, ["-XX:TieredStopAtLevel=1"]),
        (LARGE_RUN_BYTES + 1, False, []),
    ],
)
def test_the_runs_size_chooses_interpreted_code_c1_or_c2(
    cache, input_bytes, interpreted, jit
) -> None:
    cache.mkdir()
    class_archive().write_bytes(b"archive")

    with local_driver_conf(input_bytes) as conf:
        assert java_options(conf) == [
            *jit,
            "-XX:+UseSerialGC",
            f"-XX:SharedArchiveFile={class_archive()}",
        ]
        assert (conf.items() >= SMALL_RUN_CONF.items()) == interpreted
        assert conf["spark.ui.enabled"] == "false"


def test_a_failed_runs_archive_is_not_kept(cache) -> None:
    with pytest.raises(RuntimeError), local_driver_conf() as conf:
        written = java_options(conf)[-1].removeprefix("-XX:ArchiveClassesAtExit=")
        (cache / written.rpartition("/")[2]).write_bytes(b"half")
        raise RuntimeError("the job failed")

    assert list(cache.iterdir()) == []


def test_a_run_whose_jvm_wrote_no_archive_leaves_none(cache) -> None:
    with local_driver_conf():
        pass

    assert not class_archive().exists()
    assert list(cache.iterdir()) == []


def test_without_a_cache_folder_to_write_to_the_driver_runs_without_an_archive(
    tmp_path, monkeypatch
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))

    with local_driver_conf() as conf:
        assert java_options(conf) == ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]


def test_a_reinstalled_spark_gets_an_archive_of_its_own(cache, tmp_path, monkeypatch) -> None:
    """The JVM refuses an archive when a jar of its class path changed size or modification
    time (a reinstall of the same version), and then runs without any: the name changes too."""
    jars = tmp_path / "spark" / "jars"
    jars.mkdir(parents=True)
    jar = jars / "spark-core.jar"
    jar.write_bytes(b"classes")
    monkeypatch.setenv("SPARK_HOME", str(jars.parent))
    installed = class_archive()

    os.utime(jar, ns=(jar.stat().st_atime_ns, jar.stat().st_mtime_ns + 1_000_000_000))

    assert class_archive() != installed
    assert class_archive().parent == installed.parent == cache


def test_writing_an_archive_removes_those_unused_for_a_week(cache) -> None:
    cache.mkdir()
    unused, recent = cache / "spark-classes-0000000000000000.jsa", cache / "spark-classes-1.jsa"
    for old in unused, recent:
        old.write_bytes(b"archive")
    week_ago = time.time() - UNUSED_ARCHIVE_DAYS * 86400 - 60
    os.utime(unused, (week_ago, week_ago))

    with local_driver_conf() as conf:
        written = java_options(conf)[-1].removeprefix("-XX:ArchiveClassesAtExit=")
        (cache / written.rpartition("/")[2]).write_bytes(b"archive")

    assert sorted(cache.iterdir()) == sorted([recent, class_archive()])


def test_writing_an_archive_keeps_only_the_last_mapped(cache) -> None:
    cache.mkdir()
    archives = [cache / f"spark-classes-{i:016d}.jsa" for i in range(KEPT_ARCHIVES + 2)]
    for hours_ago, archive in enumerate(archives):
        archive.write_bytes(b"archive")
        mapped = time.time() - (hours_ago + 1) * 3600
        os.utime(archive, (mapped, mapped))

    with local_driver_conf() as conf:
        written = java_options(conf)[-1].removeprefix("-XX:ArchiveClassesAtExit=")
        (cache / written.rpartition("/")[2]).write_bytes(b"archive")

    kept = [class_archive(), *archives[: KEPT_ARCHIVES - 1]]
    assert sorted(cache.iterdir()) == sorted(kept)


def test_mapping_an_archive_marks_it_used(cache) -> None:
    cache.mkdir()
    archive = class_archive()
    archive.write_bytes(b"archive")
    os.utime(archive, (0, 0))

    with local_driver_conf():
        pass

    assert archive.stat().st_mtime > time.time() - 3600


def test_spark_submit_gets_its_spark_home_and_a_quick_launcher_jvm(monkeypatch) -> None:
    from pyspark.find_spark_home import _find_spark_home

    monkeypatch.delenv("SPARK_HOME", raising=False)

    assert local_driver_env() == {
        "SPARK_HOME": str(Path(_find_spark_home())),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LAUNCHER_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
