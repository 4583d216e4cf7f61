"""Compute a feature view's changed rows for the steps in [start, end) into the staging area.

    spark-submit jobs/compute_features.py --request <staging>/<view>/<run>/_request.json

Settings come from the JSTORE_* environment; the view, interval, run id and `retile` from the
request the pipeline resolved (jstore/request.py): the job never opens the registry. The rows
are written to `<lake>/staging/<view>/<run>/part-*.parquet`, then `_manifest.json` (written
last) marks the staged run complete; the last line on stdout holds the job's phases
(`jstore phases: {...}`, jstore/phases.py), which the launcher reads back. The interval is
computed from the landing zone alone, reading events from `start - step - max_window` to
`end`, so any interval can be recomputed alone, in any order.
"""

from __future__ import annotations

import jobs.installed_pyspark  # noqa: F401  first: pyspark from the installed package, not a zip

# isort: split
import argparse
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession

from jobs.changing_entities import tiles_of_changing_entities
from jobs.lake_files import LakeFiles
from jobs.landing import read_events
from jobs.spark import spark_session
from jobs.sql_view import changed_sql_rows
from jobs.tile_store import TileStore
from jobs.windows import changed_windowed_rows
from jstore import phases
from jstore.config import Settings
from jstore.lake import staging_dir
from jstore.lake_fs import location
from jstore.model import ResolvedView, SqlFeatureView
from jstore.process_exit import freeze_at_exit
from jstore.request import ComputeRequest, check_interval, read_range
from jstore.staging import StagedRun, staged_write_options


def changed_rows(
    spark: SparkSession,
    view: ResolvedView,
    lake_uri: str,
    start: datetime,
    end: datetime,
    *,
    retile: bool = False,
    s3_endpoint_url: str | None = None,
) -> DataFrame:
    """The view's changed rows for [start, end): join keys, `feature_ts`, the features.

    A windowed view reads its tiles from the tile store (jobs/tile_store.py), which first
    rebuilds from the landing zone the tiles that are missing or stale (all of the read range's
    with `retile`); a SQL view reads its events."""
    check_interval(view, start, end)
    read_start, read_end = read_range(view, start, end)
    lake = LakeFiles.at(lake_uri, s3_endpoint_url)
    if isinstance(view.definition, SqlFeatureView):
        landing = lake.spark_path(f"landing/{view.source.name}")
        events = read_events(spark, landing, view.source, view.join_keys, read_start, read_end)
        return changed_sql_rows(spark, events, view, start, end)
    tiles = TileStore(spark, lake, view).tiles(read_start, read_end, retile=retile)
    changing = tiles_of_changing_entities(tiles, view, start, end)
    return changed_windowed_rows(changing, view, start, end)


def stage_view(
    spark: SparkSession,
    settings: Settings,
    view: ResolvedView,
    start: datetime,
    end: datetime,
    run_id: str,
    *,
    retile: bool = False,
) -> StagedRun:
    """Compute [start, end) and write it as a staged run (the manifest last); `retile` rebuilds
    the stored tiles of the read range from the landing zone instead of trusting them."""
    rows = changed_rows(
        spark,
        view,
        settings.lake_uri,
        start,
        end,
        retile=retile,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    path = staging_dir(settings, view.name, run_id)
    rows.write.options(**staged_write_options(view)).mode("overwrite").parquet(path.spark_uri)
    staged = StagedRun.written(view, run_id, start, end, path)
    staged.write_manifest()
    return staged


def main(argv: list[str] | None = None) -> None:
    freeze_at_exit()  # the driver's Python exits quickly after pyspark and jstore were imported
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--request", required=True, help="the _request.json the pipeline wrote")
    settings = Settings()
    request = ComputeRequest.load(location(settings, parser.parse_args(argv).request))
    with phases.collecting() as timings:
        phases.add("job start", phases.process_age())  # this Python and its imports
        with phases.timed("spark session"):
            spark = spark_session(settings, app_name=f"jstore-compute-{request.view.name}")
        with phases.timed("spark job"):
            staged = stage_view(
                spark,
                settings,
                request.view,
                request.start,
                request.end,
                request.run_id,
                retile=request.retile,
            )
        request.write(staged.path)  # writing the rows replaced the folder: the request goes back
        print(staged.model_dump_json())
        with phases.timed("spark stop"):
            spark.stop()
    print(phases.job_line(timings), flush=True)


if __name__ == "__main__":
    main()
