"""The demo feature repo (examples/ecommerce) in a test registry, with published and validated
runs of user_purchases, for the web UI's tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from jstore.config import Settings
from jstore.registry import Registry, new_run_id
from jstore.repo import FeatureRepo
from serving.app import create_app
from tests.factories import stage_rows, validate_and_publish
from tests.quality.purchase_rows import END, START, purchase_row
from tests.serving.conftest import READ_KEY, WRITE_KEY, api_settings

__all__ = ["READ_KEY", "WRITE_KEY", "api_settings"]

INTERVAL = END - START


@pytest.fixture
def demo(api_settings: Settings, registry: Registry, example_repo: FeatureRepo) -> Registry:
    """examples/ecommerce applied; user_purchases published over two intervals, each staged,
    validated and published; the second's amounts tripled (drift flagged)."""
    registry.apply(example_repo)
    view = registry.get_view("user_purchases")
    for i, scale in enumerate((1.0, 3.0)):
        start = START + i * INTERVAL
        rows = [
            purchase_row(f"u{u:02}", 1, [scale * (u + 1)])
            | {"feature_ts": start + timedelta(hours=1)}
            for u in range(20)
        ]
        staged = stage_rows(
            api_settings, view, rows, start, start + INTERVAL, new_run_id("compute")
        )
        validate_and_publish(api_settings, registry, staged)
    return registry


@pytest.fixture
def app(api_settings: Settings, registry: Registry) -> FastAPI:
    return create_app(api_settings)


@pytest.fixture
def browser_client(app: FastAPI) -> Iterator[TestClient]:
    """A client that keeps cookies, as a browser does; no X-API-Key header."""
    with TestClient(app, follow_redirects=False) as c:
        yield c
