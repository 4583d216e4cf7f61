"""A failed Spark job's error names what went wrong: its driver's own traceback, not the INFO
lines Spark logs while it shuts down."""

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


@pytest.mark.spark
def test_a_driver_that_raises_fails_with_its_exception_in_the_message(tmp_path: Path) -> None:
    script = tmp_path / "raises.py"
    script.write_text(
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "spark.range(3).count()\n"
        "raise ValueError('the view has no column amount')\n"
    )
    job = SparkJob(name="raises", application=str(script), application_args=[])

    with pytest.raises(SparkJobFailed) as failed:
        submit(Settings(spark_master="local[1]"), job, description="compute of v")

    assert str(failed.value).startswith("compute of v failed (exit 1):\n")
    assert "ValueError: the view has no column amount" in str(failed.value)
    assert " INFO " not in str(failed.value)
