"""A staged run in a lake on S3 (the local moto server) goes the whole way: validated from the
bucket, its Data Docs written to the bucket and served by the API's /quality, published from
the bucket, and a training set exported to an s3:// URI.

Spark cannot write to S3 here (no hadoop-aws jars: docs/setup.md), so the run is staged as the
compute job stages it, with the staged-row schema (tests/factories.py `stage_rows`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from jstore.config import Settings
from jstore.export import export_training_set
from jstore.lake_fs import lake_root, location
from jstore.pipeline import publish, validate
from jstore.registry import Registry
from jstore.repo import FeatureRepo
from jstore.staging import StagedRun
from serving.app import create_app
from tests.factories import stage_rows
from tests.quality.purchase_rows import END, START, purchase_row

FEATURES = ["user_purchases:count_1h", "user_purchases:amount_sum_1h"]


def test_a_run_staged_in_the_bucket_is_validated_reported_published_and_exported(
    s3_settings: Settings, registry: Registry, example_repo: FeatureRepo, tmp_path: Path
) -> None:
    registry.apply(example_repo)
    view = example_repo.resolve("user_purchases", 1)
    rows = [purchase_row("u1", 1), purchase_row("u2", 2, [5.0, 15.0])]
    stage_rows(s3_settings, view, rows, START, END, "compute-s3")
    lake = lake_root(s3_settings)
    assert sorted(lake.files()) == [
        "staging/user_purchases/compute-s3/_manifest.json",
        "staging/user_purchases/compute-s3/_request.json",
        "staging/user_purchases/compute-s3/part-00000.parquet",
    ]

    staged = StagedRun.find(s3_settings, "user_purchases", "compute-s3")
    report = validate(s3_settings, registry, staged)
    published = publish(s3_settings, registry, staged)

    assert (staged.rows, staged.request().view.version, report.success, published) == (
        2,
        1,
        True,
        2,
    )
    docs = lake / "quality"
    page = docs.parse(report.report_path)
    assert report.report_path.startswith(f"{docs}/validations/user_purchases__v1/compute-s3/")
    assert page.is_file() and page.with_name(page.name.replace(".html", ".summary.json")).is_file()
    assert (docs / "index.html").is_file()
    report_page = registry.get_run(report.run_id).details["report_page"]
    assert report_page == page.relative_to(docs)
    with TestClient(create_app(s3_settings.model_copy(update={"api_auth_disabled": True}))) as api:
        index = api.get("/quality/")
        served = api.get(f"/quality/{report_page}")
        raw = api.get("/quality/gx/validations/")
    assert (index.status_code, index.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert report_page in index.text
    assert (served.status_code, served.content) == (200, page.read_bytes())
    assert raw.status_code == 404

    entities = tmp_path / "entities.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": ["u1", "u2", "u3"],
                "event_timestamp": pa.array(
                    [START.replace(hour=2), START.replace(hour=5), START.replace(hour=3)],
                    pa.timestamp("us", tz="UTC"),
                ),
            }
        ),
        entities,
    )
    bucket = s3_settings.lake_uri.removeprefix("s3://").partition("/")[0]
    out = f"s3://{bucket}/exports/training.parquet"

    result = export_training_set(s3_settings, registry, entities, out, FEATURES)

    exported = location(s3_settings, out)
    assert (result.out_path, result.rows) == (out, 3)
    table = pq.read_table(exported.path, filesystem=exported.fs)
    assert table.select(["user_id", *(f.replace(":", "__") for f in FEATURES)]).to_pylist() == [
        {"user_id": "u1", "user_purchases__count_1h": 1, "user_purchases__amount_sum_1h": 10.0},
        {"user_id": "u2", "user_purchases__count_1h": 2, "user_purchases__amount_sum_1h": 20.0},
        {"user_id": "u3", "user_purchases__count_1h": 0, "user_purchases__amount_sum_1h": 0.0},
    ]
    assert [name for name in exported.parent.files() if name.startswith(".")] == []
