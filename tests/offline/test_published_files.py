"""The files table: for each range of a view's table, the staged run whose Parquet files hold its
rows, recorded with the rows by publish and cut with them by retention (published_files.py)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql

from jstore.offline import OfflineStore, StagedRunRejected
from jstore.offline.arrow_copy import copy_out, select_column
from jstore.offline.published_files import file_ranges, files_table, read_rows
from jstore.offline.tables import table_id
from jstore.staging import staged_columns, staged_dtypes, staged_schema
from tests.factories import stage_rows
from tests.offline.conftest import HOUR, T0

EVER = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
APRIL, MAY, JUNE = (datetime(2024, m, 1, tzinfo=UTC) for m in (4, 5, 6))
DAY = timedelta(days=1)


def _row(account_id, ts, count, total=None):
    return {
        "bank": "b",
        "account_id": account_id,
        "feature_ts": ts,
        "count_1h": count,
        "amount_sum_1h": total,
    }


def _files(store, view):
    """The files table's rows, ordered by start."""
    rows = store.conn.execute(
        sql.SQL('SELECT run_id, start, "end" FROM {} ORDER BY start').format(
            files_table(store.schema, view)
        )
    ).fetchall()
    return [tuple(row) for row in rows]


@pytest.fixture
def publish(store, settings, spend_view):
    """`publish(rows, start, end, run_id, files=1)`: stage the rows and publish them into
    spend_view's table; returns the rows published."""

    def staged_and_published(rows, start, end, run_id, files=1):
        staged = stage_rows(settings, spend_view, rows, start, end, run_id, files=files)
        return store.publish(spend_view, staged)

    return staged_and_published


def _with_retention(view, retention):
    definition = view.definition.model_copy(update={"retention": retention})
    return view.model_copy(update={"definition": definition})


def test_a_publish_inside_a_range_splits_it_and_one_over_an_end_trims_it(
    store, spend_view, publish
):
    r1 = [_row(1, T0 + h * HOUR, h) for h in range(10)]
    publish(r1, T0, T0 + 10 * HOUR, "r1")
    assert _files(store, spend_view) == [("r1", T0, T0 + 10 * HOUR)]

    publish([], T0 + 3 * HOUR, T0 + 5 * HOUR, "r2")
    assert _files(store, spend_view) == [
        ("r1", T0, T0 + 3 * HOUR),
        ("r2", T0 + 3 * HOUR, T0 + 5 * HOUR),
        ("r1", T0 + 5 * HOUR, T0 + 10 * HOUR),
    ]

    r3 = [_row(2, T0 + 11 * HOUR, 1)]
    publish(r3, T0 + 8 * HOUR, T0 + 12 * HOUR, "r3")
    assert _files(store, spend_view) == [
        ("r1", T0, T0 + 3 * HOUR),
        ("r2", T0 + 3 * HOUR, T0 + 5 * HOUR),
        ("r1", T0 + 5 * HOUR, T0 + 8 * HOUR),
        ("r3", T0 + 8 * HOUR, T0 + 12 * HOUR),
    ]

    publish([], T0 + 2 * HOUR, T0 + 9 * HOUR, "r4")
    assert _files(store, spend_view) == [
        ("r1", T0, T0 + 2 * HOUR),
        ("r4", T0 + 2 * HOUR, T0 + 9 * HOUR),
        ("r3", T0 + 9 * HOUR, T0 + 12 * HOUR),
    ]


def test_a_republish_of_an_interval_replaces_its_run(store, spend_view, publish):
    publish([], APRIL, JUNE, "r1")
    publish([], APRIL, JUNE, "r2")
    assert _files(store, spend_view) == [("r2", APRIL, JUNE)]


def test_file_ranges_read_back_exactly_the_rows_asked(store, settings, spend_view, publish):
    """Ranges overlapping [low, high], both ends included; rows of each range's run inside the
    range and inside [low, high]; only the columns asked, in their order."""
    r1 = [_row(1, T0 + h * HOUR, h, 1.5 * h) for h in range(6)] + [_row(2, T0, 7)]
    publish(r1, T0, T0 + 6 * HOUR, "r1", files=2)
    r2 = [_row(1, T0 + 2 * HOUR, 20), _row(3, T0 + 3 * HOUR, 30)]
    publish(r2, T0 + 2 * HOUR, T0 + 4 * HOUR, "r2")

    ranges = file_ranges(store.conn, settings, store.schema, spend_view, T0 + HOUR, T0 + 4 * HOUR)
    assert [(r.run_id, r.start, r.end, len(r.files)) for r in ranges] == [
        ("r1", T0, T0 + 2 * HOUR, 2),
        ("r2", T0 + 2 * HOUR, T0 + 4 * HOUR, 1),
        ("r1", T0 + 4 * HOUR, T0 + 6 * HOUR, 2),
    ]
    columns = ["count_1h", "account_id", "amount_sum_1h"]
    batches = list(read_rows(ranges, spend_view, columns, T0 + HOUR, T0 + 4 * HOUR, batch_rows=2))
    assert max(b.num_rows for b in batches) <= 2
    table = pa.Table.from_batches(batches)
    assert table.schema == pa.schema([staged_schema(spend_view).field(c) for c in columns])
    assert table.to_pylist() == [
        {"count_1h": 1, "account_id": 1, "amount_sum_1h": 1.5},
        {"count_1h": 20, "account_id": 1, "amount_sum_1h": None},
        {"count_1h": 30, "account_id": 3, "amount_sum_1h": None},
        {"count_1h": 4, "account_id": 1, "amount_sum_1h": 6.0},
    ]


def test_a_rejected_publish_leaves_the_files_table_as_it_was(store, settings, spend_view, publish):
    publish([], T0, T0 + 6 * HOUR, "r1")
    late = [_row(1, T0 + HOUR, 1), _row(1, T0 + 3 * HOUR, 1)]  # a row after its interval
    with pytest.raises(StagedRunRejected):
        publish(late, T0, T0 + 2 * HOUR, "late")
    assert _files(store, spend_view) == [("r1", T0, T0 + 6 * HOUR)]


CRASHING_PUBLISH = textwrap.dedent(
    """
    import sys
    from jstore.config import Settings
    from jstore.offline import OfflineStore
    from jstore.staging import StagedRun
    from tests.offline.conftest import SMALL_REPO

    settings = Settings()
    with OfflineStore(settings) as store:
        view = SMALL_REPO.resolve("account_spend", 1)
        store.publish(view, StagedRun.find(settings, view.name, sys.argv[1]))
    """
)


def test_a_publish_killed_before_its_commit_leaves_the_files_table_as_it_was(
    store, settings, spend_view, publish
):
    publish([], T0, T0 + 6 * HOUR, "old")
    new = [_row(1, T0 + HOUR, 2)]
    stage_rows(settings, spend_view, new, T0 + HOUR, T0 + 3 * HOUR, "new")
    env = {
        **os.environ,
        "JSTORE_CRASH_AT": "publish:after_delete",
        "JSTORE_OFFLINE_SCHEMA": settings.offline_schema,
        "JSTORE_LAKE_URI": settings.lake_uri,
    }
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_PUBLISH, "new"], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert _files(store, spend_view) == [("old", T0, T0 + 6 * HOUR)]


def test_retention_cuts_the_ranges_before_the_months_it_drops(store, spend_view, publish):
    if store.layout.hypertables:  # the oracle below covers chunks
        pytest.skip("whole-month partitions are the plain PostgreSQL layout")
    publish([], APRIL, APRIL + DAY, "r1")
    publish([], APRIL + 10 * DAY, MAY + 10 * DAY, "r2")
    view = _with_retention(spend_view, DAY)
    assert store.drop_expired(view, now=MAY + 2 * DAY) == 1  # April
    assert _files(store, spend_view) == [("r2", MAY, MAY + 10 * DAY)]


def test_a_table_without_a_files_table_is_read_from_postgresql(
    store, settings, spend_view, publish
):
    """A table created before the files table existed: publish and retention work as before,
    and `file_ranges` answers None."""
    store.ensure_table(spend_view)
    store.conn.execute(sql.SQL("DROP TABLE {}").format(files_table(store.schema, spend_view)))
    rows = [_row(1, APRIL + HOUR, 1), _row(1, MAY + HOUR, 2)]
    assert publish(rows, APRIL, JUNE, "r1") == 2
    assert store.drop_expired(_with_retention(spend_view, DAY), now=MAY + DAY) >= 1  # April

    assert file_ranges(store.conn, settings, store.schema, spend_view, *EVER) is None
    assert store.history(spend_view, {"bank": "b", "account_id": 1})[0]["feature_ts"] == (
        MAY + HOUR
    )


def test_a_deleted_staged_run_is_read_from_postgresql(store, settings, spend_view, publish):
    publish([], T0, T0 + 2 * HOUR, "r1")
    staged = stage_rows(settings, spend_view, [], T0 + 2 * HOUR, T0 + 4 * HOUR, "r2")
    store.publish(spend_view, staged)
    assert len(file_ranges(store.conn, settings, store.schema, spend_view, *EVER)) == 2

    staged.path.rmtree()

    assert file_ranges(store.conn, settings, store.schema, spend_view, *EVER) is None
    assert len(file_ranges(store.conn, settings, store.schema, spend_view, T0, T0 + HOUR)) == 1


def test_a_staged_run_computed_again_is_read_from_postgresql(store, settings, spend_view, publish):
    """Computing a published run id again overwrites its folder (a cleared Airflow DAG run):
    the files are not the published rows any more, even before the new ones are published."""
    publish([_row(1, T0, 1)], T0, T0 + HOUR, "r1")
    assert len(file_ranges(store.conn, settings, store.schema, spend_view, *EVER)) == 1

    again = [_row(1, T0, 5), _row(2, T0, 6)]
    stage_rows(settings, spend_view, again, T0, T0 + HOUR, "r1", files=2)

    assert file_ranges(store.conn, settings, store.schema, spend_view, *EVER) is None


def test_read_rows_reads_a_lake_on_s3(s3_settings, spend_view):
    rows = [_row(1, T0, 1, 2.5), _row(2, T0 + HOUR, 2)]
    with OfflineStore(s3_settings) as store:
        store.publish(
            spend_view, stage_rows(s3_settings, spend_view, rows, T0, T0 + 2 * HOUR, "s3")
        )
        ranges = file_ranges(store.conn, s3_settings, store.schema, spend_view, *EVER)
    assert [str(f) for r in ranges for f in r.files] == [
        f"{s3_settings.lake_uri}/staging/account_spend/s3/part-00000.parquet"
    ]
    read = pa.Table.from_batches(
        read_rows(
            ranges, spend_view, ["account_id", "count_1h", "amount_sum_1h"], *EVER, batch_rows=10
        )
    )
    assert read.to_pylist() == [
        {"account_id": 1, "count_1h": 1, "amount_sum_1h": 2.5},
        {"account_id": 2, "count_1h": 2, "amount_sum_1h": None},
    ]


# The oracle -------------------------------------------------------------------------------------

START = datetime(2024, 3, 20, tzinfo=UTC)
HOURS = 24 * 110  # to early July: four month boundaries


def _stored_rows(store, view) -> pa.Table:
    dtypes = staged_dtypes(view)
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(select_column(sql.Identifier(c), d) for c, d in dtypes.items()),
        table_id(store.schema, view),
    )
    return _sorted(copy_out(store.conn, query, dtypes), view)


def _file_rows(store, settings, view) -> pa.Table:
    ranges = file_ranges(store.conn, settings, store.schema, view, *EVER)
    batches = read_rows(ranges, view, staged_columns(view), *EVER, batch_rows=7)
    return _sorted(pa.Table.from_batches(list(batches), schema=staged_schema(view)), view)


def _assert_same(read: pa.Table, stored: pa.Table) -> None:
    assert read.schema == stored.schema
    assert read.to_pylist() == stored.to_pylist()


def _sorted(table: pa.Table, view) -> pa.Table:
    return table.sort_by([(c, "ascending") for c in [*view.join_keys, "feature_ts"]])


def _staged_rows(rng: random.Random, start: datetime, hours: int, outside: bool) -> list[dict]:
    """Up to 12 rows of accounts 1-4 at random hours of [start, start + hours), with nulls; one
    an hour after the interval when `outside`."""
    picked = {(rng.randint(1, 4), rng.randrange(hours)) for _ in range(rng.randint(0, 12))}
    rows = [
        _row(
            account,
            start + hour * HOUR,
            rng.choice([None, rng.randint(0, 9)]),
            rng.choice([None, rng.uniform(-5, 5)]),
        )
        for account, hour in sorted(picked)
    ]
    return rows + ([_row(1, start + hours * HOUR, 1)] if outside else [])


PUBLISHES = st.lists(
    st.tuples(
        st.integers(0, HOURS - 1),  # start hour
        st.sampled_from([1, 5, 30, 24 * 3, 24 * 12, 24 * 40]),  # interval hours
        st.integers(0, 2**32),  # rows
        st.sampled_from([False, False, True]),  # a row outside the interval
    ),
    min_size=1,
    max_size=6,
)


@hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(publishes=PUBLISHES, kept_from=st.integers(0, HOURS))
def test_the_files_hold_exactly_the_table_rows(settings, spend_view, publishes, kept_from):
    """After any publishes (overlapping, across months, some rejected) and a retention drop,
    the rows read through the files table are the rows of the view's table."""
    schema = f"{settings.offline_schema}_{uuid.uuid4().hex[:8]}"
    own = settings.model_copy(update={"offline_schema": schema})
    try:
        with OfflineStore(own) as store:
            for i, (first, hours, seed, outside) in enumerate(publishes):
                start = START + first * HOUR
                rows = _staged_rows(random.Random(seed), start, hours, outside)
                run_id = f"{schema}-{i}"
                staged = stage_rows(own, spend_view, rows, start, start + hours * HOUR, run_id)
                if outside:
                    with pytest.raises(StagedRunRejected):
                        store.publish(spend_view, staged)
                else:
                    store.publish(spend_view, staged)
                _assert_same(_file_rows(store, own, spend_view), _stored_rows(store, spend_view))
            store.drop_expired(_with_retention(spend_view, DAY), now=START + kept_from * HOUR)
            _assert_same(_file_rows(store, own, spend_view), _stored_rows(store, spend_view))
    finally:
        with OfflineStore(own) as store:
            store.conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )
