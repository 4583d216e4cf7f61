"""The quality gate: Great Expectations suites on staged runs, feature statistics and drift.

Great Expectations itself is imported only when a run is validated (it takes seconds), so the
API and the CLI's summaries stay fast.
"""

from jstore.quality.report import QualityGateFailed, ValidationReport
from jstore.quality.summary import latest_quality_summary
from jstore.quality.validate import validate_staged

__all__ = ["QualityGateFailed", "ValidationReport", "latest_quality_summary", "validate_staged"]
