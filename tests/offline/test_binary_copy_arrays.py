"""List columns loaded by JStore's binary COPY encoder read back as the same PostgreSQL arrays
(the span tables' `timestamptz[]`), and as ADBC's `adbc_ingest` loads them."""

from __future__ import annotations

from datetime import UTC, datetime

import adbc_driver_postgresql.dbapi as adbc
import hypothesis
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from jstore.offline.binary_copy import copy_in
from tests.offline.test_binary_copy import scratch_tables

SCHEMA = pa.schema(
    [
        ("n", pa.int64()),
        ("times", pa.list_(pa.timestamp("us", tz="UTC"))),
        ("words", pa.list_(pa.string())),
        ("xs", pa.list_(pa.float64())),
    ]
)
COLUMNS = "n bigint, times timestamptz[], words text[], xs double precision[]"
T = datetime(2024, 5, 1, 10, 30, 0, 7, tzinfo=UTC)
ROWS = [
    {"n": 1, "times": [T, datetime(1970, 1, 1, tzinfo=UTC)], "words": ["a", "", "NA"], "xs": [1.5]},
    {"n": 2, "times": [], "words": [], "xs": []},
    {"n": 3, "times": None, "words": None, "xs": None},
    {"n": 4, "times": [None, T], "words": [None, "schön ✓"], "xs": [None, -0.0, 2.0]},
]


@pytest.fixture
def conn(settings):
    yield from scratch_tables(settings, COLUMNS)


def _read(conn, schema, name):
    query = sql.SQL("SELECT n, times, words, xs::text FROM {} ORDER BY ctid")
    rows = conn.execute(query.format(sql.Identifier(schema, name))).fetchall()
    return [tuple(row) for row in rows]


def _load(conn, schema, batches):
    with conn.transaction():
        copy_in(conn, sql.Identifier(schema, "mine"), SCHEMA.names, batches)


def test_lists_read_back_as_the_same_arrays(conn, settings):
    schema = settings.offline_schema
    table = pa.Table.from_pylist(ROWS, SCHEMA)
    _load(conn, schema, table.to_batches())

    assert _read(conn, schema, "mine") == [
        (1, [T, datetime(1970, 1, 1, tzinfo=UTC)], ["a", "", "NA"], "{1.5}"),
        (2, [], [], "{}"),
        (3, None, None, None),
        (4, [None, T], [None, "schön ✓"], "{NULL,-0,2}"),
    ]


def test_same_arrays_as_adbc_ingest_from_sliced_batches(conn, settings):
    schema = settings.offline_schema
    table = pa.concat_tables([pa.Table.from_pylist(ROWS, SCHEMA)] * 3)
    _load(
        conn, schema, [b for start in range(0, 12, 5) for b in table.slice(start, 5).to_batches()]
    )
    with adbc.connect(settings.postgres_dsn.get_secret_value()) as loader:
        with loader.cursor() as cursor:
            cursor.adbc_ingest("adbc", table, mode="append", db_schema_name=schema)
        loader.commit()

    assert _read(conn, schema, "mine") == _read(conn, schema, "adbc")


def test_a_list_of_a_type_without_encoding_is_refused_naming_its_field(conn, settings):
    batch = pa.record_batch([pa.array([[1]], pa.list_(pa.int32()))], names=["n"])

    with pytest.raises(TypeError, match=r"^n: no binary COPY encoding for Arrow type list"):
        _load(conn, settings.offline_schema, [batch])


times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)


@hypothesis.settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@given(
    lists=st.lists(st.none() | st.lists(st.none() | times, max_size=6), max_size=20),
    start=st.integers(0, 20),
)
def test_any_lists_of_times_read_back_exactly(conn, settings, lists, start):
    schema = settings.offline_schema
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(schema, "mine")))
    rows = [{"n": i, "times": value} for i, value in enumerate(lists)]
    table = pa.Table.from_pylist(rows, SCHEMA).slice(min(start, len(rows)))

    _load(conn, schema, table.to_batches())

    got = conn.execute(
        sql.SQL("SELECT n, times FROM {} ORDER BY ctid").format(sql.Identifier(schema, "mine"))
    ).fetchall()
    assert [tuple(row) for row in got] == [(r["n"], r["times"]) for r in rows[start:]]
