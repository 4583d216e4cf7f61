"""Where things live in the lake: landing zone, quarantine, staging and quality reports.

Layout (see docs/architecture.md):
    <lake>/landing/<source>/event_date=YYYY-MM-DD/<topic>-<partition>-<first>-<last>.parquet
    <lake>/quarantine/<source>/...
    <lake>/staging/<view>/<run>/part-*.parquet + _manifest.json
    <lake>/quality/  (Great Expectations Data Docs)
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from jstore.config import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_run_id(run_id: str) -> str:
    """A run id usable as a folder name (Airflow's contain ':' and '+')."""
    return _UNSAFE.sub("_", run_id)


def landing_dir(settings: Settings, source: str) -> Path:
    return settings.lake_path / "landing" / source


def landing_partition(settings: Settings, source: str, day: date) -> Path:
    return landing_dir(settings, source) / f"event_date={day.isoformat()}"


def quarantine_dir(settings: Settings, source: str) -> Path:
    return settings.lake_path / "quarantine" / source


def staging_dir(settings: Settings, view: str, run_id: str) -> Path:
    return settings.lake_path / "staging" / view / safe_run_id(run_id)


def quality_dir(settings: Settings) -> Path:
    return settings.lake_path / "quality"
