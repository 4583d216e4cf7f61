"""Materialize counts, per view, the offline rows it pushes: what `jstore materialize` shows as
a bar on a terminal and an Airflow task as log lines (times left out here)."""

from __future__ import annotations

import re

from jstore import progress
from jstore.online import materialize
from jstore.progress import LineReporter
from tests.online.online_helpers import HOUR, T0, apply_clicks, publish_rows, row


def test_materialize_counts_the_rows_pushed_per_view(settings, registry) -> None:
    view = apply_clicks(registry)
    rows = [row("u1", T0, 1, 5.0, 5.0), row("u2", T0, 2, 9.0, 6.0), row("u3", T0 + HOUR, 1, 1, 1)]
    publish_rows(settings, registry, view, T0, T0 + 2 * HOUR, rows)
    lines: list[str] = []

    with progress.reporting(LineReporter(lines.append, every_s=0)):
        materialize(settings, registry)

    assert [re.sub(r"\d+\.\d s", "… s", line) for line in lines] == [
        "materialize user_clicks: 3 rows, … s",
        "materialize user_clicks: 3 rows, … s, done",
    ]
