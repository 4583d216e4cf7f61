"""Arrow batches loaded by JStore's binary COPY encoder read back exactly as they were (any rows,
cut into any batches), and as ADBC's `adbc_ingest` (the encoder it replaces in publish) loads
them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from itertools import pairwise

import adbc_driver_postgresql.dbapi as adbc
import hypothesis
import psycopg
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from jstore.offline.binary_copy import copy_in

SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("n", pa.int64()),
        ("x", pa.float64()),
        ("flag", pa.bool_()),
    ]
)
COLUMNS = "key text, ts timestamptz, n bigint, x double precision, flag boolean"
ROWS = [
    {
        "key": "u1",
        "ts": datetime(2024, 5, 1, 10, 30, 0, 7, tzinfo=UTC),
        "n": 0,
        "x": 1.5,
        "flag": True,
    },
    {"key": "", "ts": datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "n": -1, "x": -0.0},
    {"key": "nan", "x": math.nan, "flag": True},
    {"key": "schön ✓ 名", "ts": datetime(1970, 1, 1, tzinfo=UTC), "n": 2**63 - 1, "x": math.inf},
    {"key": None, "ts": None, "n": None, "x": None, "flag": None},
    {"key": "a\tb\nc\\d", "n": -(2**63), "x": -math.inf, "flag": False},
    {"key": "x" * 70_000, "ts": datetime(2262, 4, 11, tzinfo=UTC), "x": 1e-310},
]


def scratch_tables(settings, columns: str):
    """A connection to the settings' new schema, holding tables `mine` and `adbc` of `columns`."""
    dsn = settings.postgres_dsn.get_secret_value()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(settings.offline_schema)))
        for name in ("mine", "adbc"):
            c.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    sql.Identifier(settings.offline_schema, name), sql.SQL(columns)
                )
            )
        yield c


@pytest.fixture
def conn(settings):
    yield from scratch_tables(settings, f"{COLUMNS}, fill text DEFAULT 'default'")


def _table():
    return pa.Table.from_pylist([{f: row.get(f) for f in SCHEMA.names} for row in ROWS], SCHEMA)


def _read(conn, schema, name):
    rows = conn.execute(
        sql.SQL("SELECT key, ts, n, x, flag, fill FROM {} ORDER BY ctid").format(
            sql.Identifier(schema, name)
        )
    ).fetchall()
    return [tuple(row) for row in rows]


def _load(conn, schema, batches):
    with conn.transaction():
        copy_in(conn, sql.Identifier(schema, "mine"), SCHEMA.names, batches)


def _comparable(rows):
    """Floats by repr, so -0.0 and NaN compare as themselves."""
    return [(*row[:3], repr(row[3]), *row[4:]) for row in rows]


def test_every_type_null_and_edge_value_reads_back_exactly(conn, settings):
    schema = settings.offline_schema
    _load(conn, schema, _table().to_batches())

    expected = [(*(row.get(f) for f in SCHEMA.names), "default") for row in ROWS]
    assert _comparable(_read(conn, schema, "mine")) == _comparable(expected)


def test_same_rows_as_adbc_ingest_from_sliced_batches(conn, settings):
    schema = settings.offline_schema
    table = pa.concat_tables([_table()] * 3)
    sliced = [b for start in range(0, 21, 4) for b in table.slice(start, 4).to_batches()]
    _load(conn, schema, [table.to_batches()[0].slice(0, 0), *sliced])
    with adbc.connect(settings.postgres_dsn.get_secret_value()) as loader:
        with loader.cursor() as cursor:
            cursor.adbc_ingest("adbc", table, mode="append", db_schema_name=schema)
        loader.commit()

    mine = _read(conn, schema, "mine")
    assert _comparable(mine) == _comparable(_read(conn, schema, "adbc"))
    assert len(mine) == 21


def test_a_type_without_encoding_is_refused_naming_its_field(conn, settings):
    batch = pa.record_batch([pa.array([1], pa.int32())], names=["n"])

    with pytest.raises(TypeError, match=r"^n: no binary COPY encoding for Arrow type int32"):
        _load(conn, settings.offline_schema, [batch])


def _optional(values):
    return st.none() | values


row_strategy = st.fixed_dictionaries(
    {
        "key": _optional(
            st.text(
                st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=40,
            )
        ),
        "ts": _optional(
            st.datetimes(
                min_value=datetime(1, 1, 1),
                max_value=datetime(9999, 12, 31),
                timezones=st.just(UTC),
            )
        ),
        "n": _optional(st.integers(-(2**63), 2**63 - 1)),
        "x": _optional(st.floats(allow_nan=True, allow_infinity=True)),
        "flag": _optional(st.booleans()),
    }
)


@hypothesis.settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(row_strategy, max_size=30), cuts=st.lists(st.integers(0, 30), max_size=4))
def test_any_rows_in_any_batches_read_back_exactly(conn, settings, rows, cuts):
    schema = settings.offline_schema
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(schema, "mine")))
    table = pa.Table.from_pylist(rows, SCHEMA)
    edges = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    batches = [b for lo, hi in pairwise(edges) for b in table.slice(lo, hi - lo).to_batches()]

    _load(conn, schema, batches)

    expected = [(*(row[f] for f in SCHEMA.names), "default") for row in rows]
    assert _comparable(_read(conn, schema, "mine")) == _comparable(expected)
