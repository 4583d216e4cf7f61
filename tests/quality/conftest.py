"""Staged runs of user_purchases written directly with pyarrow, for the quality gate's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jstore.config import Settings
from jstore.model import ResolvedView
from jstore.registry import Registry
from jstore.repo import FeatureRepo
from jstore.staging import StagedRun
from tests.factories import stage_rows
from tests.quality.purchase_rows import END, START


@pytest.fixture
def user_purchases(registry: Registry, example_repo: FeatureRepo) -> ResolvedView:
    registry.apply(example_repo)
    return example_repo.resolve("user_purchases", 1)


@pytest.fixture
def stage(settings: Settings, user_purchases: ResolvedView) -> Callable[..., StagedRun]:
    """Write rows as a complete staged run of user_purchases v1 over [START, END)."""

    def write(rows: list[dict[str, Any]], run_id: str = "compute-test") -> StagedRun:
        return stage_rows(settings, user_purchases, rows, START, END, run_id)

    return write
