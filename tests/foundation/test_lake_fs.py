"""The lake's filesystem layer: how a lake URI is read, how paths print and map to Spark's names,
and the operations the lake relies on, on a local folder and on S3 (the local moto server)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.lake import landed_bytes, landing_partition, quarantine_dir, staging_dir
from jstore.lake_fs import LakePath, lake_root, local_mirror, location, spark_conf, spark_jars

S3_LAKE = Settings(lake_uri="s3a://bucket/pre/fix/", s3_endpoint_url="http://127.0.0.1:59000")


def test_every_location_derives_from_the_lake_uri_and_prints_as_its_uri() -> None:
    assert str(lake_root(S3_LAKE)) == "s3://bucket/pre/fix"
    assert str(staging_dir(S3_LAKE, "v", "manual__2024-05-01T00:00:00+00:00")) == (
        "s3://bucket/pre/fix/staging/v/manual__2024-05-01T00_00_00_00_00"
    )
    assert quarantine_dir(S3_LAKE, "src").spark_uri == "s3a://bucket/pre/fix/quarantine/src"
    local = Settings(lake_uri="file:///data/lake")
    assert str(lake_root(local)) == "/data/lake"
    day = landing_partition(local, "src", date(2024, 5, 1))
    assert (str(day), day.spark_uri) == ("/data/lake/landing/src/event_date=2024-05-01",) * 2


def test_landed_bytes_adds_up_the_files_of_the_days_an_interval_falls_on(tmp_path) -> None:
    settings = Settings(lake_uri=str(tmp_path))
    for day, sizes in {1: [10], 2: [20, 300], 3: [4000], 4: [50000]}.items():
        folder = Path(landing_partition(settings, "src", date(2024, 5, day)))
        folder.mkdir(parents=True)
        for i, size in enumerate(sizes):
            (folder / f"part-{i}.parquet").write_bytes(b"x" * size)

    def at(day: int, hour: int = 0) -> datetime:
        return datetime(2024, 5, day, hour, tzinfo=UTC)

    assert landed_bytes(settings, "src", at(1, 23), at(4)) == 10 + 20 + 300 + 4000
    assert landed_bytes(settings, "src", at(2), at(2, 1)) == 320
    assert landed_bytes(settings, "src", at(4, 5), at(6)) == 50000
    assert landed_bytes(settings, "other", at(1), at(5)) == 0


def test_a_path_parses_back_from_its_text_and_names_its_parts() -> None:
    page = lake_root(S3_LAKE) / "quality" / "validations" / "run.html"
    docs = lake_root(S3_LAKE) / "quality"
    assert docs.parse(str(page)) == page
    assert (page.name, page.suffix, page.parent, page.with_name("x.json")) == (
        "run.html",
        ".html",
        docs / "validations",
        docs / "validations" / "x.json",
    )
    assert page.relative_to(docs) == "validations/run.html"
    with pytest.raises(ValueError, match="is not inside"):
        docs.relative_to(page)
    with pytest.raises(TypeError, match="on an object store, not a local path"):
        Path(page)


def test_other_uris_are_refused_naming_the_uri() -> None:
    with pytest.raises(ValueError, match="'hdfs://nn/lake' is neither a local path nor s3://"):
        lake_root(Settings(lake_uri="hdfs://nn/lake"))


def test_spark_reaches_an_s3_lake_through_s3a_and_the_configured_jars() -> None:
    assert spark_conf(S3_LAKE) == {
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:59000",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
    }
    jars = S3_LAKE.model_copy(update={"spark_s3_jars": "/j/hadoop-aws.jar,/j/bundle.jar"})
    assert spark_jars(jars) == f"{S3_LAKE.jdbc_jar},/j/hadoop-aws.jar,/j/bundle.jar"
    local = Settings(lake_uri="/data/lake", spark_s3_jars="/j/hadoop-aws.jar")
    assert (spark_conf(local), spark_jars(local)) == ({}, local.jdbc_jar)


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> LakePath:
    if request.param == "local":
        return lake_root(Settings(lake_uri=str(tmp_path / "lake")))
    return lake_root(request.getfixturevalue("s3_settings"))


def test_files_are_written_whole_listed_moved_and_deleted(lake: LakePath) -> None:
    landing = lake / "landing" / "src"
    (landing / "event_date=2024-05-01" / "a.parquet").write_bytes(b"a")
    (landing / "event_date=2024-05-02" / ".b.parquet.7.tmp").write_bytes(b"b")
    (landing / "_journal" / "j.json").write_text("{}")

    assert [p.relative_to(landing) for p in landing.glob("event_date=*/*.parquet")] == [
        "event_date=2024-05-01/a.parquet"
    ]
    assert [p.name for p in landing.rglob(".*.tmp")] == [".b.parquet.7.tmp"]
    temp = landing / "event_date=2024-05-02" / ".b.parquet.7.tmp"
    final = landing / "event_date=2024-05-02" / "b.parquet"
    temp.replace(final)
    with pytest.raises(FileNotFoundError):
        temp.replace(final)  # moved already: a second mover is told, the target stays
    assert (final.read_bytes(), temp.exists(), final.is_file()) == (b"b", False, True)
    assert sorted(landing.files()) == [
        "_journal/j.json",
        "event_date=2024-05-01/a.parquet",
        "event_date=2024-05-02/b.parquet",
    ]
    (landing / "_journal" / "j.json").unlink()
    (landing / "_journal" / "j.json").unlink(missing_ok=True)
    landing.rmtree()
    assert (landing.files(), landing.exists()) == ({}, False)


def test_a_local_mirror_uploads_what_the_block_wrote_and_fetches_what_it_lacks(
    lake: LakePath,
) -> None:
    docs = lake / "quality"
    (docs / "gx" / "validations" / "r1.json").write_text("r1")
    (docs / "validations" / "r1.html").write_text("old page")

    with local_mirror(docs, download="gx") as local:
        assert (local / "gx" / "validations" / "r1.json").read_text() == "r1"
        (local / "gx" / "validations" / "r2.json").write_text("r2")
        (local / "index.html").write_text("index")

    assert {name: (docs / name).read_text() for name in docs.files()} == {
        "gx/validations/r1.json": "r1",
        "gx/validations/r2.json": "r2",
        "index.html": "index",
        "validations/r1.html": "old page",
    }


def test_a_user_names_an_output_by_path_or_uri() -> None:
    assert str(location(S3_LAKE, "s3://other/x.parquet")) == "s3://other/x.parquet"
    assert location(S3_LAKE, Path("/tmp/x.csv")) == lake_root(Settings(lake_uri="/tmp")) / "x.csv"
