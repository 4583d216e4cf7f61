"""A job's driver that never imports pandas: pyspark would, for nothing a JStore job uses.

pyspark 4 imports its test utilities (`pyspark.testing.utils`) from `F.lit`, from its numpy
argument converters (asked about every argument of every call into the JVM) and from
`createDataFrame`; they import pandas to check its version, for pandas UDFs and `toPandas`,
which no JStore job calls. That import is 0.3-0.5 s at load 10 inside the job's first phases
(0.02-0.04 s without it); an idle machine's small run pays about half of it. With pandas
marked absent (`sys.modules["pandas"] = None`, Python's documented way), pyspark records it as
missing and goes on; code that does need pandas fails at once with `ImportError: import of
pandas halted`, never silently.
"""

from __future__ import annotations

import sys


def without_pandas() -> None:
    """Mark pandas absent for the rest of this process, unless it is imported already."""
    sys.modules.setdefault("pandas", None)
