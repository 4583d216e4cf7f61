"""Export counts the training-set rows as it writes them: what `jstore export` shows as a bar
on a terminal and the export DAG's task as log lines (times left out here)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from jstore import progress
from jstore.export import export_training_set
from jstore.progress import LineReporter


def test_export_counts_the_rows_written(settings, registry, example_repo, tmp_path) -> None:
    registry.apply(example_repo)
    entities = tmp_path / "entities.parquet"
    when = datetime(2024, 5, 2, tzinfo=UTC)
    pq.write_table(
        pa.table(
            {
                "user_id": ["u1", "u2", "u3"],
                "merchant_id": ["m0001"] * 3,
                "event_timestamp": pa.array([when] * 3, pa.timestamp("us", tz="UTC")),
            }
        ),
        entities,
    )
    lines: list[str] = []

    with progress.reporting(LineReporter(lines.append, every_s=0)):
        export_training_set(
            settings, registry, entities, tmp_path / "out.parquet", None, "fraud_v1"
        )

    assert [re.sub(r"\d+\.\d s", "… s", line) for line in lines] == [
        "export fraud_v1: 3 rows, … s",
        "export fraud_v1: 3 rows, … s, done",
    ]
