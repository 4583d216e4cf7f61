"""Fixtures of the online-store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jstore.config import Settings
from jstore.offline import OfflineStore
from tests.online.redis_cluster import redis_cluster  # noqa: F401 - the tests' Redis Cluster


@pytest.fixture
def offline(settings: Settings) -> Iterator[OfflineStore]:
    with OfflineStore(settings) as store:
        yield store
