"""Fixtures of the online-store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jstore.config import Settings
from jstore.offline import OfflineStore


@pytest.fixture
def offline(settings: Settings) -> Iterator[OfflineStore]:
    with OfflineStore(settings) as store:
        yield store
