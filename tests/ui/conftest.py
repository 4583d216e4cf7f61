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


def publish_demo(
    settings: Settings, registry: Registry, repo: FeatureRepo, scales: tuple[float, ...]
) -> Registry:
    """`repo` applied; user_purchases published over one interval per scale, each staged,
    validated and published, its 20 users' amounts multiplied by the scale."""
    registry.apply(repo)
    view = registry.get_view("user_purchases")
    for i, scale in enumerate(scales):
        start = START + i * INTERVAL
        rows = [
            purchase_row(f"u{u:02}", 1, [scale * (u + 1)])
            | {"feature_ts": start + timedelta(hours=1)}
            for u in range(20)
        ]
        staged = stage_rows(settings, view, rows, start, start + INTERVAL, new_run_id("compute"))
        validate_and_publish(settings, registry, staged)
    return registry


@pytest.fixture
def demo(api_settings: Settings, registry: Registry, example_repo: FeatureRepo) -> Registry:
    """The demo repo with two published intervals, the second's amounts tripled (drift)."""
    return publish_demo(api_settings, registry, example_repo, (1.0, 3.0))


@pytest.fixture
def app(api_settings: Settings, registry: Registry) -> FastAPI:
    return create_app(api_settings)


@pytest.fixture
def browser_client(app: FastAPI) -> Iterator[TestClient]:
    """A client that keeps cookies, as a browser does; no X-API-Key header."""
    with TestClient(app, follow_redirects=False) as c:
        yield c
