"""Text that spreadsheets and CSV readers like to take for null, published as keys and values.

Shared by tests/offline/test_text_is_text.py and tests/serving/test_serving_text_is_text.py
(issue 10, point 2: text is text on every path). `user_pages` has a string key and a string
feature (`page_last_1h`, the last page visited in the hour), so such text is both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jstore.config import Settings
from jstore.model import (
    Aggregation,
    Entity,
    EventSource,
    FieldSpec,
    ResolvedView,
    WindowedFeatureView,
)
from jstore.registry import Registry
from jstore.repo import FeatureRepo
from tests.online.online_helpers import publish_rows

TEXTS = ["NA", "N/A", "null", "NULL", "nan", "#N/A", "", "None"]
"""Each is a user key, and (rotated by one) the page that user last visited."""
PAGES = {text: TEXTS[(i + 1) % len(TEXTS)] for i, text in enumerate(TEXTS)}
HOUR = timedelta(hours=1)
T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
MIDNIGHT = T0.replace(hour=0)
"""Coverage starts at the day's checkpoint: every time of [MIDNIGHT, END) can be answered."""
END = T0 + 2 * HOUR
FEATURES = ["user_pages:count_1h", "user_pages:page_last_1h"]
NULL_PAGE_USER = "u-null-page"
"""A user whose last visit has no page at all: a real null among the texts."""

user = Entity(name="user", join_keys=["user_id"])
visits = EventSource(
    name="visits",
    topic="visits",
    timestamp_field="ts",
    schema=[
        FieldSpec(name="user_id", dtype="string"),
        FieldSpec(name="page", dtype="string"),
        FieldSpec(name="ts", dtype="timestamp"),
    ],
)
user_pages = WindowedFeatureView(
    name="user_pages",
    entities=["user"],
    source="visits",
    step="1h",
    aggregations=[
        Aggregation(function="count", windows=["1h"]),
        Aggregation(function="last", column="page", windows=["1h"]),
    ],
)


def published_pages(settings: Settings, registry: Registry) -> ResolvedView:
    """user_pages over [MIDNIGHT, END): each text user has a row at T0 with its page, and
    NULL_PAGE_USER one whose page is null."""
    registry.apply(FeatureRepo.of(user, visits, user_pages))
    view = registry.get_view("user_pages")
    rows = [
        {"user_id": key, "feature_ts": T0, "count_1h": 1, "page_last_1h": page}
        for key, page in PAGES.items()
    ]
    rows.append({"user_id": NULL_PAGE_USER, "feature_ts": T0, "count_1h": 1, "page_last_1h": None})
    publish_rows(settings, registry, view, MIDNIGHT, END, rows)
    return view
