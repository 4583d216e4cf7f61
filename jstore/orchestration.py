"""What the Airflow DAGs schedule and run, kept free of Airflow so it can be tested without it.

`dags/jstore_dags.py` is wiring only: it reads the registry snapshot (`load_snapshot`), asks
here for each DAG's schedule and asset, and its tasks call the `*_task` functions below. Each
task function opens its own registry, calls the library function that does the work, logs what
was read, written and validated with counts, and returns a small JSON-able summary (the task's
XCom). Heavy modules (Spark, Great Expectations, the stores) are imported inside the functions,
so parsing a DAG file imports none of them.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from jstore.config import PROJECT_ROOT, Settings
from jstore.durations import as_utc, floor_to_step, format_duration, parse_timestamp
from jstore.model import ResolvedView
from jstore.registry import Registry, Snapshot

if TYPE_CHECKING:
    from jstore.spark_submit import SparkJob

log = logging.getLogger(__name__)

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
"""start_date of DAGs without a view `start` (landing, extracts no view reads, exports)."""

DEFAULT_STEP = timedelta(hours=1)
"""Extract cadence of a table source that no view reads."""

LAND_EVERY = timedelta(minutes=5)
LAND_MAX_RECORDS = 100_000
"""The bound of one landing batch (a DAG param, so a run can ask for more or less)."""


def airflow_environment(home: Path, port: int = 8085) -> dict[str, str]:
    """The environment of JStore's local Airflow (`make airflow`, `jstore demo`).

    Its own home (SQLite metadata, logs, the generated login), the project's DAGs and plugins,
    no example DAGs, the API server on `port`, and `spark_default` submitting `local[*]` with
    the spark-submit of this Python's environment (put first on PATH).
    """
    spark = {"conn_type": "spark", "host": "local[*]", "extra": {"deploy-mode": "client"}}
    bin_dir = str(Path(sys.executable).parent)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(spark),
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
    }


def load_snapshot(path: Path) -> Snapshot | None:
    """The registry snapshot, or None (logged) when there is none yet: a DAG parse never fails."""
    if not path.exists():
        log.warning(
            "no registry snapshot at %s: no JStore DAGs (run `jstore apply` to write it)", path
        )
        return None
    try:
        return Snapshot.load(path)
    except ValueError as e:
        log.error("registry snapshot %s is unreadable, no JStore DAGs: %s", path, e)
        return None


def step_cron(step: timedelta) -> str | None:
    """A cron expression firing exactly at the UTC step boundaries, or None if cron cannot.

    Steps that divide an hour (in whole minutes) or a day (in whole hours) align with cron's
    fields; other steps (`7d`, `5h`, `90s`) are scheduled as a fixed delta from the view's start.
    """
    seconds = int(step.total_seconds())
    minutes, hours = seconds // 60, seconds // 3600
    if seconds % 60:
        return None
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if seconds % 3600 == 0 and hours < 24 and 24 % hours == 0:
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    if seconds == 86400:
        return "0 0 * * *"
    return None


def asset_uri(project: str, view: str) -> str:
    """The Asset a view's compute DAG emits when it publishes: `jstore://<project>/<view>`."""
    return f"jstore://{project}/{view}"


def views_of_source(snapshot: Snapshot, source: str) -> list[ResolvedView]:
    return [v for v in snapshot.views.values() if v.source.name == source]


def extract_schedule(snapshot: Snapshot, source: str) -> tuple[timedelta, datetime]:
    """(step, start) of a table source's extract DAG.

    The finest step of the views that read the source, from the earliest of their starts; a
    source no view reads is extracted hourly. Like the compute DAGs, it does not catch up on
    unpause: history is extracted by a backfill (docs/airflow.md).
    """
    views = views_of_source(snapshot, source)
    if not views:
        return DEFAULT_STEP, DEFAULT_START
    step = min(v.definition.step for v in views)
    starts = [v.definition.start for v in views if v.definition.start is not None]
    return step, min(starts, default=DEFAULT_START)


def run_interval(
    params: dict[str, Any],
    interval_start: datetime | None,
    interval_end: datetime | None,
    step: timedelta,
    now: datetime | None = None,
) -> tuple[datetime, datetime]:
    """A run's [start, end): its data interval, unless its params name other ends.

    A run without a data interval (a manual trigger) and without the params computes the latest
    complete step before `now` (the run's `run_after`, so that a retry computes the same step):
    its end defaults to the last step boundary at or before now, its start to one step before
    its end. Plain UTC datetimes either way: Airflow's are pendulum's, whose differences are
    pendulum intervals that `timedelta` arithmetic (step alignment) does not accept.
    """
    start = _interval_end(params, "start", interval_start)
    end = _interval_end(params, "end", interval_end)
    if end is None:
        end = floor_to_step(_plain(now or datetime.now(UTC)), step)
    if start is None:
        start = end - step
    return start, end


def _interval_end(params: dict[str, Any], name: str, fallback: datetime | None) -> datetime | None:
    if params.get(name):
        try:
            return parse_timestamp(str(params[name]))
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    if fallback is not None:
        return _plain(fallback)
    return None


def _plain(ts: datetime) -> datetime:
    """A plain UTC datetime of Airflow's (pendulum's) or any other."""
    return parse_timestamp(as_utc(ts).isoformat())


def report_page(settings: Settings, report_path: str) -> str:
    """A quality report's page in the Data Docs site (`<api_url>/ui/quality/<page>`)."""
    from jstore.lake import quality_dir

    docs = quality_dir(settings)
    return docs.parse(report_path).relative_to(docs)


def data_docs_url(settings: Settings, page: str) -> str:
    """Where users' browsers open a Data Docs page: the JStore web UI's copy of the site."""
    return f"{settings.api_url.rstrip('/')}/ui/quality/{page}"


def summary(result: BaseModel) -> dict[str, Any]:
    """A task's return value as JSON (its XCom)."""
    return result.model_dump(mode="json")


def land_task(settings: Settings, source: str, max_records: int) -> dict[str, Any]:
    from jstore.ingest.lander import land

    with Registry(settings) as registry:
        result = land(settings, registry, source, max_records=max_records)
    log.info(
        "read topic %s (batch of at most %d): landed %d rows in %d files, quarantined %d, "
        "%d late; run %s",
        result.topic,
        max_records,
        result.rows,
        result.files,
        result.quarantined,
        result.late,
        result.run_id,
    )
    return summary(result)


def extract_task(
    settings: Settings,
    source: str,
    start: datetime,
    end: datetime,
    launch: Callable[[SparkJob], object] | None = None,
) -> dict[str, Any]:
    """Extract [start, end) of a table source; `launch` starts its Spark job."""
    from jstore.ingest.extract import extract

    with Registry(settings) as registry:
        result = extract(settings, registry, source, start, end, launch)
    log.info(
        "read table %s [%s, %s): landed %d rows in %d files (replacing %d); run %s",
        result.table,
        result.start,
        result.end,
        result.rows,
        result.files,
        result.replaced,
        result.run_id,
    )
    return summary(result)


def compute_task(
    settings: Settings,
    view: str,
    version: int,
    start: datetime,
    end: datetime,
    run_id: str,
    *,
    retile: bool = False,
    launch: Callable[[SparkJob], object] | None = None,
) -> dict[str, Any]:
    """Resolve the run's compute request and stage it with Spark (`pipeline.stage`)."""
    from jstore.pipeline import stage
    from jstore.request import ComputeRequest

    with Registry(settings) as registry:
        resolved = registry.get_view(view, version)
        request = ComputeRequest.of(resolved, start, end, run_id, retile=retile)
        staged = stage(settings, registry, request, launch)
    log.info(
        "staged %d rows of %s v%d [%s, %s) in %d files at %s; run %s%s",
        staged.rows,
        view,
        staged.version,
        staged.start,
        staged.end,
        len(staged.parquet_files),
        staged.path,
        run_id,
        " (retiled)" if retile else "",
    )
    return {"rows": staged.rows, "path": str(staged.path)}


def validate_task(settings: Settings, view: str, run_id: str) -> dict[str, Any]:
    """Validate the rows the compute task staged for `run_id` (`pipeline.validate`).

    A failed suite raises `QualityGateFailed`, which the DAG turns into a task failure without
    retries: it would fail the same way.
    """
    from jstore.pipeline import validate
    from jstore.quality import QualityGateFailed
    from jstore.staging import StagedRun

    staged = StagedRun.find(settings, view, run_id)
    log.info(
        "read staged run %s: %s v%d [%s, %s), %d rows in %d files at %s",
        run_id,
        view,
        staged.version,
        staged.start,
        staged.end,
        staged.rows,
        len(staged.parquet_files),
        staged.path,
    )
    with Registry(settings) as registry:
        try:
            report = validate(settings, registry, staged)
        except QualityGateFailed as e:
            for line in e.report.failed:
                log.error("failed expectation: %s", line)
            raise
    log.info(
        "validated %d rows of %s v%d: passed; drift flagged: %s; report at %s",
        staged.rows,
        view,
        staged.version,
        ", ".join(report.drift_flagged) or "none",
        report.report_path,
    )
    return {
        "rows": staged.rows,
        "drift_flagged": report.drift_flagged,
        "report_path": report.report_path,
        "report_page": report_page(settings, report.report_path),
    }


def publish_task(settings: Settings, view: str, run_id: str) -> dict[str, Any]:
    """Publish the validated staged run (`pipeline.publish`): replace its interval."""
    from jstore.pipeline import publish
    from jstore.staging import StagedRun

    staged = StagedRun.find(settings, view, run_id)
    with Registry(settings) as registry:
        rows = publish(settings, registry, staged)
    log.info(
        "published %d rows of %s v%d into %s.%s__v%d, replacing [%s, %s)",
        rows,
        view,
        staged.version,
        settings.offline_schema,
        view,
        staged.version,
        staged.start,
        staged.end,
    )
    return {"rows": rows, "start": staged.start.isoformat(), "end": staged.end.isoformat()}


def materialize_task(settings: Settings, views: list[str] | None = None) -> dict[str, Any]:
    """Push every view it can; the task fails, naming each failed view, when any failed."""
    from jstore.online import MaterializeFailed, materialize

    with Registry(settings) as registry:
        result = materialize(settings, registry, views)
    for done in result.views:
        log.info(
            "materialized %s v%d into Redis: %d keys written, %d deleted, watermark %s",
            done.view,
            done.version,
            done.written,
            done.deleted,
            done.watermark,
        )
    for failed in result.failed:
        log.error("materialize %s v%d failed: %s", failed.view, failed.version, failed.error)
    if result.failed:
        raise MaterializeFailed(result.failed)
    return summary(result)


class ExportParams(BaseModel):
    """The export DAG's params: the features (comma-separated refs) or a service, and files."""

    features: str = ""
    service: str = ""
    entities: str
    out: str
    engine: Literal["default", "spark"] = "default"
    """`spark`: the Spark job (jstore/export_spark.py), through the task's SparkSubmitOperator."""

    def feature_refs(self) -> list[str] | None:
        refs = [r.strip() for r in self.features.split(",") if r.strip()]
        if bool(refs) == bool(self.service.strip()):
            raise ValueError("features: give either features (comma-separated refs) or service")
        return refs or None


def export_task(
    settings: Settings, params: ExportParams, launch: Callable[[SparkJob], object] | None = None
) -> dict[str, Any]:
    """The export DAG's task; `launch` starts the Spark job of `engine: spark`."""
    from jstore.export import export_training_set

    refs = params.feature_refs()
    with Registry(settings) as registry:
        entities = Path(params.entities)
        service = params.service.strip() or None
        result = export_training_set(
            settings,
            registry,
            entities,
            params.out,
            refs,
            service,
            engine=params.engine,
            launch=launch,
        )
    log.info(
        "read %d entity rows from %s; wrote %s with %d feature columns (%s); "
        "rows past coverage per view: %s",
        result.rows,
        params.entities,
        result.out_path,
        len(result.columns),
        params.service or "features",
        result.uncovered_rows or "none",
    )
    return summary(result)


def describe_view(view: ResolvedView) -> str:
    """The compute DAG's doc_md: what the view computes and how the DAG runs it."""
    features = "\n".join(f"- `{f.name}` ({f.dtype})" for f in view.features)
    return (
        f"### {view.name} v{view.version}\n\n{view.definition.description}\n\n"
        f"Every `{format_duration(view.definition.step)}` step: Spark computes the interval "
        "from the "
        f"landing zone of source `{view.source.name}` into staging, Great Expectations validates "
        f"it, and the interval is published to `{view.table}`, replacing what was there. "
        "Any run can be re-run or backfilled: an interval's rows never depend on other runs.\n\n"
        f"Keys: {', '.join(view.join_keys)}. Features:\n\n{features}\n"
    )


def prepare_local_airflow(home: Path) -> None:
    """Point this process at the local Airflow and migrate its SQLite metadata database.

    Call it before anything imports Airflow (its configuration is read once, on import).
    """
    os.environ.update(airflow_environment(home))
    home.mkdir(parents=True, exist_ok=True)
    from airflow.utils import db

    try:
        db.check_migrations(timeout=1)
    except TimeoutError:
        db.initdb()


def run_dag(dag_id: str, logical_date: datetime | None = None, conf: dict | None = None) -> Any:
    """Run one DAG run in this process (`dag.test`), as the scheduler would; the DagRun.

    The run's data interval is the step that ends at `logical_date` (a manual run's), and
    `conf` sets its params. Raises if any task failed.
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if dag_id not in bag.dags:
        raise KeyError(f"no DAG {dag_id!r} (import errors: {bag.import_errors or 'none'})")
    run = bag.dags[dag_id].test(logical_date=logical_date, run_conf=conf)
    if run.state != "success":
        raise RuntimeError(f"DAG {dag_id} run {run.run_id} ended {run.state}")
    return run


if __name__ == "__main__":
    # `eval "$(python -m jstore.orchestration HOME PORT)"`: scripts/airflow.sh's environment.
    for name, value in airflow_environment(Path(sys.argv[1]), int(sys.argv[2])).items():
        print(f"export {name}={shlex.quote(value)}")
