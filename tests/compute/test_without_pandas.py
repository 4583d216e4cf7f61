"""The compute job's driver runs without pandas, which pyspark would import for nothing the job
uses (in a fresh Python: marking pandas absent is for the rest of a process)."""

from __future__ import annotations

import subprocess
import sys

JOB_DRIVER = """
import sys
from jobs.without_pandas import without_pandas
without_pandas()
import jobs.compute_features
import pyspark.testing.utils  # what F.lit, py4j's numpy converters and createDataFrame import
import pyarrow.parquet
print(sys.modules["pandas"], pyspark.testing.utils.have_pandas)
try:
    import pandas
except ImportError as error:
    print(error)
"""


def test_the_job_driver_imports_pyspark_without_pandas():
    done = subprocess.run(
        [sys.executable, "-c", JOB_DRIVER], capture_output=True, text=True, check=True
    )

    assert done.stdout.splitlines() == [
        "None False",
        "import of pandas halted; None in sys.modules",
    ]


def test_pandas_already_imported_stays():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pandas, sys\n"
            "from jobs.without_pandas import without_pandas\n"
            "without_pandas()\n"
            "print(sys.modules['pandas'] is pandas)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )

    assert done.stdout == "True\n"
