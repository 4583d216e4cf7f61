"""Text is text in the offline store and `jstore export` (issue 10, point 2).

Keys and values such as `NA`, `null`, `#N/A` and the empty string are published, then read
back by every offline path: the latest rows, one entity's history, the changes materialize
reads, and the point-in-time join of CSV and Parquet entity files. None of them becomes null;
in a CSV entity file an empty cell is the empty string in a string column and null elsewhere.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from jstore.export import export_training_set
from jstore.offline import OfflineStore
from tests.text_values import FEATURES, NULL_PAGE_USER, PAGES, T0, TEXTS, published_pages

USERS = [*TEXTS, NULL_PAGE_USER]
EXPECTED_PAGES = {**PAGES, NULL_PAGE_USER: None}


def test_latest_rows_and_history_keep_text(settings, registry):
    view = published_pages(settings, registry)

    with OfflineStore(settings) as store:
        latest = store.latest_for_entities(view, [(user,) for user in USERS])
        history = store.history(view, {"user_id": "NA"})

    assert {key[0]: row["page_last_1h"] for key, row in latest.items()} == EXPECTED_PAGES
    assert [(row["feature_ts"], row["page_last_1h"]) for row in history] == [(T0, "N/A")]


def test_changes_for_materialize_keep_text(settings, registry):
    view = published_pages(settings, registry)

    with OfflineStore(settings) as store:
        changed = pa.Table.from_batches(list(store.changed_since(view, None)))

    rows = changed.select(["user_id", "page_last_1h"]).to_pylist()
    assert sorted(rows, key=lambda r: r["user_id"]) == sorted(
        ({"user_id": user, "page_last_1h": page} for user, page in EXPECTED_PAGES.items()),
        key=lambda r: r["user_id"],
    )


def _entities_csv() -> str:
    """One row per text user at 10:30, its text also in `note`; `label` empty in the last."""
    lines = ["user_id,event_timestamp,note,label"]
    for i, text in enumerate(TEXTS):
        label = "" if i == len(TEXTS) - 1 else str(i)
        lines.append(f"{text},2024-05-01T10:30:00Z,{text},{label}")
    return "\n".join(lines) + "\n"


def test_a_csv_entity_file_keeps_text_keys_and_columns(settings, registry, tmp_path):
    """Counts only: a join whose features all have a fixed width."""
    published_pages(settings, registry)
    entities = tmp_path / "entities.csv"
    entities.write_text(_entities_csv())

    export_training_set(
        settings, registry, entities, tmp_path / "out.parquet", features=[FEATURES[0]]
    )

    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == [
        {
            "user_id": text,
            "event_timestamp": "2024-05-01T10:30:00Z",
            "note": text,
            "label": None if i == len(TEXTS) - 1 else i,
            "user_pages__count_1h": 1,
        }
        for i, text in enumerate(TEXTS)
    ]


def test_a_csv_entity_file_gets_text_features(settings, registry, tmp_path):
    published_pages(settings, registry)
    entities = tmp_path / "entities.csv"
    entities.write_text(_entities_csv())

    export_training_set(settings, registry, entities, tmp_path / "out.parquet", features=FEATURES)

    out = pq.read_table(tmp_path / "out.parquet")
    assert out.select(["user_id", "user_pages__page_last_1h"]).to_pylist() == [
        {"user_id": text, "user_pages__page_last_1h": PAGES[text]} for text in TEXTS
    ]


def test_a_parquet_entity_file_and_a_csv_training_set(settings, registry, tmp_path):
    """In the CSV written, text is quoted (`"NA"`, `""`) and a null is an empty cell."""
    published_pages(settings, registry)
    entities = tmp_path / "entities.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": ["NA", "", NULL_PAGE_USER],
                "event_timestamp": ["2024-05-01T10:30:00Z"] * 3,
                "note": ["null", None, ""],
            }
        ),
        entities,
    )

    export_training_set(settings, registry, entities, tmp_path / "out.csv", features=FEATURES)

    assert (tmp_path / "out.csv").read_text().splitlines() == [
        '"user_id","event_timestamp","note","user_pages__count_1h","user_pages__page_last_1h"',
        '"NA","2024-05-01T10:30:00Z","null",1,"N/A"',
        '"","2024-05-01T10:30:00Z",,1,"None"',
        '"u-null-page","2024-05-01T10:30:00Z","",1,',
    ]
