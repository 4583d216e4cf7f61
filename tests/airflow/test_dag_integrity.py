"""The DAGs built from the example repo's snapshot: ids, tasks, schedules, assets and defaults."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.quality.report import QualityGateFailed, ValidationReport
from jstore.spark_submit import compute_job
from tests.airflow.dag_inputs import DAGS

START = datetime(2024, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)

EXPECTED_TASKS = {
    "jstore_land_purchases": ["land", "recompute"],
    "jstore_extract_customers": ["extract"],
    "jstore_compute_user_purchases": ["compute", "validate", "publish"],
    "jstore_compute_merchant_sales": ["compute", "validate", "publish"],
    "jstore_compute_user_categories": ["compute", "validate", "publish"],
    "jstore_compute_user_big_spends": ["compute", "validate", "publish"],
    "jstore_materialize": ["materialize"],
    "jstore_export_training_set": ["export"],
}
COMPUTE_STEPS = {
    "user_purchases": ("0 * * * *", "fraud-team"),
    "merchant_sales": ("0 0 * * *", "marketplace-team"),
    "user_categories": ("0 * * * *", "fraud-team"),
    "user_big_spends": ("0 * * * *", "fraud-team"),
}


def test_no_import_errors_and_exactly_the_expected_dags(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dag_ids) == sorted(EXPECTED_TASKS)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_TASKS))
def test_dag_has_tasks_tags_owner_and_retries(dagbag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert sorted(dag.task_ids) == sorted(EXPECTED_TASKS[dag_id])
    assert "jstore" in dag.tags
    assert dag.doc_md
    dag.check_cycle()
    for t in dag.tasks:
        assert t.owner and t.owner != "airflow"
        assert t.retries >= 1


@pytest.mark.parametrize("view", sorted(COMPUTE_STEPS))
def test_compute_dag_runs_every_step_from_the_view_start(dagbag, view: str) -> None:
    from airflow.sdk import Asset, CronDataIntervalTimetable

    cron, owner = COMPUTE_STEPS[view]
    dag = dagbag.dags[f"jstore_compute_{view}"]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.expression == cron
    assert str(dag.timetable.timezone) == "UTC"
    assert dag.catchup is False  # unpausing runs the latest step, not one per step since start
    assert dag.max_active_runs == 1  # runs of one view share its stored tile blocks
    assert dag.start_date == START
    assert dag.owner == owner
    compute, validate, publish = (dag.get_task(t) for t in ("compute", "validate", "publish"))
    assert compute.downstream_task_ids == {"validate"}
    assert validate.downstream_task_ids == {"publish"}
    assert compute._conn_id == "spark_default"
    assert compute.application == compute_job("x", view).application
    assert compute.application.endswith("jobs/compute_features.py")
    assert (compute.view_name, compute.view_version) == (view, 1)
    assert set(dag.params.keys()) == {"start", "end", "retile"}
    for name in ("start", "end"):
        param = dag.params.get_param(name)
        assert param.schema["format"] == "date-time"  # the trigger form shows a picker
        assert param.resolve(None) is None
        assert param.resolve("2024-05-01T00:00:00+00:00") == "2024-05-01T00:00:00+00:00"
    assert publish.outlets == [Asset(f"jstore://shop/{view}")]


class RecordingTaskInstance:
    """What the validate task pushes to XCom, and what a link reads back (the worker's task
    instance, here without Airflow's database)."""

    def __init__(self) -> None:
        self.pushed: dict[tuple[str, str], object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[("validate", key)] = value

    def xcom_pull(self, task_ids: str, key: str) -> object:
        return self.pushed.get((task_ids, key))


def test_a_failed_suite_fails_the_validate_task_without_retries(dagbag, monkeypatch) -> None:
    """A retry would fail the same way: AirflowFailException ends the task at once. The failed
    run's Data Docs page is still pushed, so its "Data Docs" link opens the failed report."""
    from airflow.sdk.exceptions import AirflowFailException

    from jstore.config import Settings
    from jstore.lake import quality_dir

    dag = dagbag.dags["jstore_compute_user_purchases"]
    validate = dag.get_task("validate")
    wiring = validate.python_callable.__globals__
    report = ValidationReport(
        run_id="validate-1",
        staged_run_id="r1",
        view="user_purchases",
        version=1,
        success=False,
        failed=["count_1h: 1 values below 0"],
        statistics={},
        drift={},
        drift_flagged=[],
        report_path=str(quality_dir(Settings()) / "validations" / "r1.html"),
        rows=3,
    )

    def failed_suite(*args):
        raise QualityGateFailed(report)

    ti = RecordingTaskInstance()
    monkeypatch.setitem(wiring, "get_current_context", lambda: {"run_id": "r1", "ti": ti})
    monkeypatch.setattr(wiring["orchestration"], "validate_task", failed_suite)
    monkeypatch.setenv("JSTORE_API_URL", "http://features.example:8765")
    with pytest.raises(AirflowFailException, match="1 expectations failed on staged run r1"):
        validate.python_callable()
    assert ti.pushed == {("validate", "report_page"): "validations/r1.html"}
    for task_id in ("validate", "publish"):
        (link,) = dag.get_task(task_id).operator_extra_links
        assert link.name == "Data Docs"
        assert link.get_link(dag.get_task(task_id), ti_key=ti) == (
            "http://features.example:8765/ui/quality/validations/r1.html"
        )
    assert link.get_link(dag.get_task("publish"), ti_key=RecordingTaskInstance()) == ""


def test_the_data_docs_link_survives_serialization(dagbag) -> None:
    """The API server knows a task's links from the serialized DAG only."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.from_dict(
        DagSerialization.to_dict(dagbag.dags["jstore_compute_user_purchases"])
    )
    assert dag.get_task("publish").extra_links == ["Data Docs"]
    assert dag.get_task("validate").extra_links == ["Data Docs"]
    assert dag.get_task("compute").extra_links == []


def test_first_runs_are_the_first_steps_after_start(dagbag) -> None:
    """A backfill from START runs [start, start + 1h), then [start + 1h, start + 2h), ..."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dagbag.dags["jstore_compute_user_purchases"].timetable)
    import pendulum

    restriction = TimeRestriction(earliest=pendulum.instance(START), latest=None, catchup=True)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    second = timetable.next_dagrun_info(
        last_automated_data_interval=first.data_interval, restriction=restriction
    )
    assert (first.data_interval.start, first.data_interval.end) == (START, START + HOUR)
    assert (second.data_interval.start, second.data_interval.end) == (
        START + HOUR,
        START + 2 * HOUR,
    )


def test_unpausing_schedules_the_latest_complete_step_not_every_step_since_start(dagbag) -> None:
    """Without catch-up the scheduler's first run is the step that ended last, not `START`'s."""
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    from jstore.durations import floor_to_step

    dag = dagbag.dags["jstore_compute_user_purchases"]
    timetable = coerce_to_core_timetable(dag.timetable)
    restriction = TimeRestriction(
        earliest=pendulum.instance(START), latest=None, catchup=dag.catchup
    )
    before = floor_to_step(datetime.now(UTC), HOUR)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    after = floor_to_step(datetime.now(UTC), HOUR)
    assert first.data_interval.end in {before, after}
    assert first.data_interval.end - first.data_interval.start == HOUR


def test_materialize_runs_when_any_view_publishes(dagbag) -> None:
    from airflow.sdk import Asset, AssetAny

    dag = dagbag.dags["jstore_materialize"]
    assert dag.timetable.asset_condition == AssetAny(
        *(Asset(f"jstore://shop/{view}") for view in sorted(COMPUTE_STEPS))
    )


def test_extract_runs_hourly_without_catchup_when_no_view_reads_the_table(dagbag) -> None:
    dag = dagbag.dags["jstore_extract_customers"]
    assert dag.timetable.expression == "0 * * * *"
    assert dag.catchup is False


def test_land_runs_every_five_minutes_bounded(dagbag) -> None:
    dag = dagbag.dags["jstore_land_purchases"]
    assert dag.timetable.delta == timedelta(minutes=5)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.params["max_records"] == 100_000


def test_land_then_recomputes_the_intervals_late_events_changed(dagbag, monkeypatch) -> None:
    """After each batch, `late_events.recompute_task` republishes what late events changed."""
    from jstore import late_events

    dag = dagbag.dags["jstore_land_purchases"]
    assert dag.get_task("land").downstream_task_ids == {"recompute"}
    recompute = dag.get_task("recompute")
    assert recompute.upstream_task_ids == {"land"}
    monkeypatch.setattr(late_events, "recompute_task", lambda settings: {"runs": ["called"]})
    assert recompute.python_callable() == {"runs": ["called"]}


def test_export_is_triggered_with_params(dagbag) -> None:
    dag = dagbag.dags["jstore_export_training_set"]
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert set(dag.params.keys()) == {"features", "service", "entities", "out", "engine"}
    assert dag.params["engine"] == "default"


def test_the_spark_export_is_submitted_through_spark_default_with_the_jdbc_driver(
    dagbag, monkeypatch, tmp_path: Path
) -> None:
    """The export task's SparkSubmitOperator gets `export_job`, as the CLI's launcher does: the
    JDBC driver in the Spark conf (`spark.jars` on spark-submit's command line)."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from dags.jstore_dags import submit_job
    from jstore.export_spark import export_job

    submitted = []
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda op, ctx: submitted.append(op))
    export = dagbag.dags["jstore_export_training_set"].get_task("export")
    assert type(export).__name__ == "ExportOperator"
    assert export._conn_id == "spark_default"
    settings = Settings()
    job = export_job(settings, tmp_path / "request.json", "export-1")

    submit_job(export, job, context={}, settings=settings)

    assert submitted == [export]
    assert export.application.endswith("jobs/export_training_set.py")
    assert export.application_args == ["--request", str(tmp_path / "request.json")]
    assert export.conf["spark.jars"] == settings.jdbc_jar
    assert export.conf["spark.driver.extraJavaOptions"] == "-Duser.timezone=UTC"


def test_parse_makes_no_network_call(example_snapshot: Path, monkeypatch) -> None:
    """The registry servers unreachable and any socket connect refused: the file still parses."""
    from airflow.dag_processing.dagbag import DagBag

    def refuse(self, address):
        raise AssertionError(f"a DAG parse connected to {address}")

    monkeypatch.setenv("JSTORE_REGISTRY_SNAPSHOT", str(example_snapshot))
    monkeypatch.setenv("JSTORE_MONGO_URI", "mongodb://127.0.0.1:9")
    monkeypatch.setenv("JSTORE_POSTGRES_DSN", "postgresql://jstore:x@127.0.0.1:9/jstore")
    monkeypatch.setenv("JSTORE_REDIS_URL", "redis://127.0.0.1:9/0")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    bag = DagBag(dag_folder=DAGS)
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(EXPECTED_TASKS)


def test_missing_snapshot_builds_no_dags_and_does_not_fail(tmp_path: Path, monkeypatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("JSTORE_REGISTRY_SNAPSHOT", str(tmp_path / "absent.json"))
    bag = DagBag(dag_folder=DAGS)
    assert bag.import_errors == {}
    assert bag.dag_ids == []


def test_spark_tasks_submit_the_launchers_job_with_its_progress_conf(dagbag, monkeypatch) -> None:
    """The DAG's SparkSubmitOperator gets the job the CLI's launcher gets, Spark conf included
    (the console progress bar that the task log streams)."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from dags.jstore_dags import submit_job
    from jstore.spark_submit import PROGRESS_CONF

    submitted = []
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda op, ctx: submitted.append(op))
    compute = dagbag.dags["jstore_compute_user_purchases"].get_task("compute")
    job = compute_job("/lake/staging/user_purchases/r1/_request.json", "user_purchases")

    submit_job(compute, job, context={}, settings=Settings())

    assert submitted == [compute]
    assert (compute.application, compute.application_args) == (
        job.application,
        job.application_args,
    )
    assert compute.conf == PROGRESS_CONF


def test_the_extract_is_submitted_through_spark_default_with_the_jdbc_driver(
    dagbag, monkeypatch, tmp_path: Path
) -> None:
    """The extract task's SparkSubmitOperator gets `extract_job`, as the CLI's launcher does:
    the JDBC driver in `jars`, the task's settings and the source's DSN in the environment."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    from dags.jstore_dags import submit_job
    from jstore.ingest.extract import extract_job
    from jstore.ingest.table_database import SOURCE_DSN_ENV

    submitted = []
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda op, ctx: submitted.append(op))
    extract = dagbag.dags["jstore_extract_customers"].get_task("extract")
    assert type(extract).__name__ == "ExtractOperator"
    assert extract._conn_id == "spark_default"
    settings = Settings(postgres_dsn="postgresql://u:secret@db:5432/shop")
    dsn = "postgresql://crm:crm-secret@crm-db:5432/crm"
    job = extract_job(
        settings, "customers", START, START + HOUR, tmp_path / "r.json", 7, dsn, "00000003-1B-1"
    )

    submit_job(extract, job, context={}, settings=settings)

    assert submitted == [extract]
    assert extract.application.endswith("jobs/extract_table.py")
    assert extract.application_args == [
        "customers",
        *("--start", "2024-05-01T00:00:00+00:00", "--end", "2024-05-01T01:00:00+00:00"),
        *("--result-file", str(tmp_path / "r.json"), "--lease-token", "7"),
        *("--snapshot", "00000003-1B-1"),
    ]
    assert extract.conf["spark.jars"] == Settings().jdbc_jar  # on spark-submit's command line
    assert extract.env_vars[SOURCE_DSN_ENV] == dsn
    assert extract.env_vars["JSTORE_POSTGRES_DSN"] == "postgresql://u:secret@db:5432/shop"
    assert not any("secret" in arg for arg in extract.application_args)
