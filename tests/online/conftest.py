"""Fixtures of the online-store tests."""

from __future__ import annotations

import pytest

from jstore.config import Settings
from tests.online.online_helpers import NaiveOffline


@pytest.fixture
def offline(settings: Settings) -> NaiveOffline:
    return NaiveOffline(settings)
