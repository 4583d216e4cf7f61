"""JStore's DAGs, one set per registered feature repo, built from the registry snapshot file.

- `jstore_land_<source>`: every few minutes, one bounded batch from Kafka into the landing zone,
  then the late events' intervals recomputed and republished.
- `jstore_extract_<source>`: a table source's rows of each data interval into the landing zone
  (Spark, submitted through `spark_default` as compute's job is).
- `jstore_compute_<view>`: on the view's step, without catch-up (history is backfilled): Spark
  computes the interval into staging -> Great Expectations validates it -> publish replaces the
  interval in the offline store and emits the Asset `jstore://<project>/<view>`. Backfills
  re-run any range.
- `jstore_materialize`: on any of those Assets, an incremental push of every view to Redis.
- `jstore_export_training_set`: triggered with params, a point-in-time training-set export.

Wiring only: the snapshot is a local file (no database or network call at parse time) and the
work is done by `jstore.orchestration`, whose heavy imports happen inside the tasks. Every task
takes the stores from Airflow Connections where they are defined (`task_settings`,
jstore/connections.py, docs/airflow.md), and hands them to the Spark jobs it submits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import (
    DAG,
    Asset,
    AssetAny,
    BaseOperatorLink,
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    Param,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException

from jstore import orchestration
from jstore.config import Settings
from jstore.connections import task_settings
from jstore.model import ResolvedView
from jstore.registry import Snapshot
from jstore.spark_submit import SparkJob, job_environment, job_script


def default_args(owner: str) -> dict:
    return {"owner": owner or "jstore", "retries": 2, "retry_delay": timedelta(minutes=1)}


def step_timetable(step: timedelta) -> CronDataIntervalTimetable | DeltaDataIntervalTimetable:
    """Data intervals of one step each, on UTC step boundaries."""
    cron = orchestration.step_cron(step)
    if cron is None:
        return DeltaDataIntervalTimetable(step)
    return CronDataIntervalTimetable(cron, timezone="UTC")


def interval_params() -> dict[str, Param]:
    """A manual run may name its own [start, end) (say two days at once) instead of one step.

    `format: date-time` makes the trigger form show a date-time picker. Left empty: the run's
    data interval, or for a manual run without one the latest complete step before now.
    """
    defaults = {
        "start": "default: the run's data interval start, else one step before `end`",
        "end": "default: the run's data interval end, else the last step boundary before now",
    }
    return {
        name: Param(
            None,
            type=["null", "string"],
            format="date-time",
            title=name,
            description=f"UTC, on a step boundary; {default}",
        )
        for name, default in defaults.items()
    }


def context_interval(context: Any, step: timedelta) -> tuple[datetime, datetime]:
    """The task's [start, end): its run's params, else its data interval, else the latest step
    before the run was due (its `run_after`; a manual run's is when it was triggered)."""
    return orchestration.run_interval(
        context["params"],
        context.get("data_interval_start"),
        context.get("data_interval_end"),
        step,
        getattr(context.get("dag_run"), "run_after", None),
    )


def land_dag(source: str) -> DAG:
    with DAG(
        dag_id=f"jstore_land_{source}",
        schedule=orchestration.LAND_EVERY,
        start_date=orchestration.DEFAULT_START,
        catchup=False,
        max_active_runs=1,
        default_args=default_args("jstore"),
        params={"max_records": Param(orchestration.LAND_MAX_RECORDS, type="integer", minimum=1)},
        tags=["jstore", "land", f"source:{source}"],
        doc_md=(
            f"One bounded batch of source `{source}` from Kafka into the landing zone, then "
            "every view's published intervals that late events changed are recomputed and "
            "republished (`jstore recompute`)."
        ),
    ) as dag:

        @task(task_id="land")
        def land() -> dict:
            params = get_current_context()["params"]
            return orchestration.land_task(task_settings(), source, int(params["max_records"]))

        @task(task_id="recompute")
        def recompute() -> dict:
            from jstore.late_events import recompute_task

            return recompute_task(task_settings())

        land() >> recompute()
    return dag


def extract_dag(snapshot: Snapshot, source: str) -> DAG:
    step, start = orchestration.extract_schedule(snapshot, source)
    with DAG(
        dag_id=f"jstore_extract_{source}",
        schedule=step_timetable(step),
        start_date=start,
        catchup=False,
        max_active_runs=2,
        default_args=default_args("jstore"),
        params=interval_params(),
        tags=["jstore", "extract", f"source:{source}"],
        doc_md=f"The rows of table source `{source}` in each data interval, into the landing zone.",
    ) as dag:
        ExtractOperator(task_id="extract", source=source, step=step)
    return dag


REPORT_PAGE = "report_page"
"""The XCom key under which a compute DAG's `validate` task keeps its Data Docs page."""


class DataDocsLink(BaseOperatorLink):
    """The "Data Docs" button of a validate or publish task: the run's quality report.

    Airflow 3 computes an operator's links on the worker when the task ends (failed too) and
    keeps them in XCom; this one reads the page the run's `validate` task pushed.
    """

    name = "Data Docs"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        page = ti_key.xcom_pull(task_ids="validate", key=REPORT_PAGE)
        return orchestration.data_docs_url(Settings(), page) if page else ""


def submit_job(
    operator: SparkSubmitOperator, job: SparkJob, context: Any, settings: Settings
) -> None:
    """Submit `job` (`jstore.spark_submit.spark_job`'s description) through the operator's
    connection, with its Spark conf (the console progress bar the task log streams; the
    jars of `with_jars`) and the task's `settings` in its environment (the job
    rebuilds them with `Settings()`)."""
    operator.name, operator.application = job.name, job.application
    operator.application_args = job.application_args
    operator.env_vars = {**job_environment(settings), **job.env_vars}
    operator.conf = {**(operator.conf or {}), **job.conf}
    SparkSubmitOperator.execute(operator, context)


class ExtractOperator(SparkSubmitOperator):
    """The extract task: `jstore.ingest.extract.extract` of the run's interval, its Spark job
    (`extract_job`, with the JDBC driver as `spark.jars`) submitted through the `spark_default`
    connection, as compute's is."""

    def __init__(self, *, source: str, step: timedelta, **kwargs: Any) -> None:
        super().__init__(
            conn_id="spark_default",
            name=f"jstore-extract-{source}",
            application=str(job_script("extract_table.py")),
            **kwargs,
        )
        self.source, self.step = source, step

    def execute(self, context: Any) -> dict:
        start, end = context_interval(context, self.step)
        settings = task_settings()

        def launch(job: SparkJob) -> None:
            submit_job(self, job, context, settings)

        return orchestration.extract_task(settings, self.source, start, end, launch=launch)


class ComputeOperator(SparkSubmitOperator):
    """The compute task: `jstore.pipeline.stage` of the run's interval, recorded as its
    `compute` run. The job is submitted through the `spark_default` connection with the
    arguments `jstore.spark_submit.compute_job` builds (`--request <path>`), as the CLI's."""

    def __init__(self, *, view: ResolvedView, **kwargs: Any) -> None:
        super().__init__(
            conn_id="spark_default",
            name=f"jstore-compute-{view.name}",
            application=str(job_script("compute_features.py")),
            **kwargs,
        )
        self.view_name, self.view_version = view.name, view.version
        self.view_step = view.definition.step

    def execute(self, context: Any) -> dict:
        start, end = context_interval(context, self.view_step)
        settings = task_settings()

        def launch(job: SparkJob) -> None:
            submit_job(self, job, context, settings)

        return orchestration.compute_task(
            settings,
            self.view_name,
            self.view_version,
            start,
            end,
            context["run_id"],
            retile=bool(context["params"].get("retile")),
            launch=launch,
        )


def compute_dag(project: str, view: ResolvedView) -> DAG:
    with DAG(
        dag_id=f"jstore_compute_{view.name}",
        schedule=step_timetable(view.definition.step),
        start_date=view.definition.start or orchestration.DEFAULT_START,
        catchup=False,  # unpausing runs the latest step; history is for backfills
        max_active_runs=1,  # two runs of one view would race on its stored tile blocks
        default_args=default_args(view.definition.owner),
        params={
            **interval_params(),
            "retile": Param(False, type="boolean", description="Rebuild the stored tiles."),
        },
        tags=[
            "jstore",
            "compute",
            f"view:{view.name}",
            *(f"{k}:{v}" for k, v in view.definition.tags.items()),
        ],
        doc_md=orchestration.describe_view(view),
    ) as dag:
        compute = ComputeOperator(task_id="compute", view=view)

        @task(task_id="validate")
        def validate() -> dict:
            from jstore.quality import QualityGateFailed

            context = get_current_context()
            settings = task_settings()
            try:
                result = orchestration.validate_task(settings, view.name, context["run_id"])
            except QualityGateFailed as e:
                page = orchestration.report_page(settings, e.report.report_path)
                context["ti"].xcom_push(key=REPORT_PAGE, value=page)
                raise AirflowFailException(str(e)) from e  # a retry would fail the same way
            context["ti"].xcom_push(key=REPORT_PAGE, value=result["report_page"])
            return result

        @task(task_id="publish", outlets=[Asset(orchestration.asset_uri(project, view.name))])
        def publish() -> dict:
            run_id = get_current_context()["run_id"]
            return orchestration.publish_task(task_settings(), view.name, run_id)

        validated, published = validate(), publish()
        for step in (validated, published):
            step.operator.operator_extra_links = (DataDocsLink(),)
        compute >> validated >> published
    return dag


def materialize_dag(project: str, views: list[str]) -> DAG:
    assets = [Asset(orchestration.asset_uri(project, view)) for view in views]
    with DAG(
        dag_id="jstore_materialize",
        schedule=AssetAny(*assets),
        start_date=orchestration.DEFAULT_START,
        catchup=False,
        max_active_runs=1,
        default_args=default_args("jstore"),
        tags=["jstore", "materialize"],
        doc_md="When any view publishes: push what changed since the last run to Redis.",
    ) as dag:

        @task(task_id="materialize")
        def materialize() -> dict:
            return orchestration.materialize_task(task_settings())

        materialize()
    return dag


class ExportOperator(SparkSubmitOperator):
    """The export task: `jstore.orchestration.export_task` with the run's params; with
    `engine: spark` its Spark job (`jstore.export_spark.export_job`, with the JDBC driver) is
    submitted through the `spark_default` connection, as compute's is."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            conn_id="spark_default",
            name="jstore-export",
            application=str(job_script("export_training_set.py")),
            **kwargs,
        )

    def execute(self, context: Any) -> dict:
        settings = task_settings()

        def launch(job: SparkJob) -> None:
            submit_job(self, job, context, settings)

        params = orchestration.ExportParams(**context["params"])
        return orchestration.export_task(settings, params, launch=launch)


def export_dag() -> DAG:
    with DAG(
        dag_id="jstore_export_training_set",
        schedule=None,
        start_date=orchestration.DEFAULT_START,
        catchup=False,
        default_args=default_args("jstore"),
        params={
            "features": Param("", type="string", description="Comma-separated feature refs."),
            "service": Param("", type="string", description="Or a feature service name."),
            "entities": Param(type="string", description="Entity rows (.parquet or .csv)."),
            "out": Param(type="string", description="Output file (.parquet or .csv)."),
            "engine": Param(
                "default",
                enum=["default", "spark"],
                description="spark: a Spark job writing a Parquet folder (docs/offline_store.md).",
            ),
        },
        tags=["jstore", "export"],
        doc_md="A point-in-time training set for the entity rows of a file, to a file.",
    ) as dag:
        ExportOperator(task_id="export")
    return dag


def build(snapshot: Snapshot) -> list[DAG]:
    dags = [land_dag(s.name) for s in snapshot.sources.values() if s.kind == "event"]
    dags += [extract_dag(snapshot, s.name) for s in snapshot.sources.values() if s.kind == "table"]
    dags += [compute_dag(snapshot.project, view) for view in snapshot.views.values()]
    if snapshot.views:
        dags.append(materialize_dag(snapshot.project, sorted(snapshot.views)))
    dags.append(export_dag())
    return dags


_snapshot = orchestration.load_snapshot(Settings().registry_snapshot)
for _dag in build(_snapshot) if _snapshot else []:
    globals()[_dag.dag_id] = _dag
