"""A failed Spark job's error names what went wrong: its driver's own traceback, not the INFO
lines Spark logs while it shuts down. A small local run's driver gets the confs of its size."""

from __future__ import annotations

from pathlib import Path

import pytest

from jstore.config import Settings
from jstore.spark_submit import SparkJob, SparkJobFailed, failure_message, submit


def test_the_message_has_the_drivers_output_without_info_lines_then_the_stderr_tail() -> None:
    stdout = "\n".join(
        [
            "Traceback (most recent call last):",
            '  File "job.py", line 3, in <module>',
            "26/11/30 15:06:22 INFO SparkContext: Invoking stop() from shutdown hook",
            "ValueError: no column amount",
        ]
    )
    stderr_tail = ["26/11/30 15:06:20 WARN NativeCodeLoader: Unable to load native-hadoop library"]

    message = failure_message("compute of v", 1, stdout, stderr_tail)

    assert message.splitlines() == [
        "compute of v failed (exit 1):",
        "Traceback (most recent call last):",
        '  File "job.py", line 3, in <module>',
        "ValueError: no column amount",
        "26/11/30 15:06:20 WARN NativeCodeLoader: Unable to load native-hadoop library",
    ]


def driver(tmp_path: Path, *lines: str) -> SparkJob:
    """A job whose driver gets the session, then runs `lines`."""
    script = tmp_path / "driver.py"
    session = "from pyspark.sql import SparkSession\nspark = SparkSession.builder.getOrCreate()"
    script.write_text("\n".join([session, *lines]) + "\n")
    return SparkJob(name="driver", application=str(script), application_args=[])


@pytest.mark.spark
def test_a_driver_that_raises_fails_with_its_exception_in_the_message(tmp_path: Path) -> None:
    job = driver(
        tmp_path, "spark.range(3).count()", "raise ValueError('the view has no column amount')"
    )

    with pytest.raises(SparkJobFailed) as failed:
        submit(Settings(spark_master="local[1]"), job, description="compute of v")

    assert str(failed.value).startswith("compute of v failed (exit 1):\n")
    assert "ValueError: the view has no column amount" in str(failed.value)
    assert " INFO " not in str(failed.value)


@pytest.mark.spark
def test_a_small_local_run_is_submitted_interpreted(tmp_path: Path) -> None:
    job = driver(
        tmp_path,
        "codegen = 'spark.sql.codegen.factoryMode', 'spark.sql.codegen.wholeStage'",
        "print(*(spark.conf.get(key) for key in codegen))",
    )

    done = submit(
        Settings(spark_master="local[1]"), job, description="compute of v", input_bytes=lambda: 1
    )

    assert "NO_CODEGEN false" in done.stdout.splitlines()
