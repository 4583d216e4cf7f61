"""A staged run just written: its rows are counted from the Parquet files' footers, every part
file of the folder and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from jstore.lake_fs import local_path
from jstore.model import resolve
from jstore.staging import StagedRun, staged_schema


def test_a_written_run_counts_the_rows_of_every_part_file(tmp_path, example_repo) -> None:
    view = resolve(
        example_repo.views["merchant_sales"], 1, example_repo.entities, example_repo.sources
    )
    start, end = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 3, tzinfo=UTC)
    row = {"merchant_id": "m1", "feature_ts": start, "count_1d": 1}
    folder = local_path(tmp_path / "run-1")
    folder.mkdir()
    for name, rows in [("part-00000.snappy.parquet", [row, row]), ("part-00001.parquet", [])]:
        pq.write_table(pa.Table.from_pylist(rows, schema=staged_schema(view)), (folder / name).path)
    (folder / "_SUCCESS").write_text("")
    (folder / "_request.json").write_text("{}")

    staged = StagedRun.written(view, "run-1", start, end, folder)

    assert (staged.view, staged.version, staged.run_id, staged.rows) == (
        "merchant_sales",
        1,
        "run-1",
        2,
    )
    assert (staged.start, staged.end, staged.path) == (start, end, folder)
