"""Reading query results into Arrow by CSV COPY keeps text as text (issue 10, point 2)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from jstore.offline.arrow_copy import copy_out, copy_out_batches, select_column

TEXTS = ["NA", "N/A", "null", "NULL", "nan", "#N/A", "", " ", '"', "a,b", "line\nbreak", None]
WHEN = datetime(2024, 5, 1, 10, 30, 0, 7, tzinfo=UTC)


@pytest.fixture
def conn(settings):
    with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as c:
        yield c


def _query():
    return sql.SQL(
        "SELECT t AS text, n AS number, {ts} AS ts FROM unnest(%s::text[], %s::float8[], "
        "%s::timestamptz[]) AS v(t, n, w)"
    ).format(ts=select_column(sql.Identifier("w"), "timestamp"))


def _params(texts):
    numbers = [None if t is None else float(i) for i, t in enumerate(texts)]
    times = [None if t is None else WHEN for t in texts]
    return [texts, numbers, times]


def test_copy_out_keeps_every_text_and_null(conn):
    query = sql.SQL(_query().as_string(conn).replace("%s", "{}")).format(
        *map(sql.Literal, _params(TEXTS))
    )
    table = copy_out(conn, query, {"text": "string", "number": "float64", "ts": "timestamp"})

    assert table.to_pylist() == [
        {
            "text": t,
            "number": None if t is None else float(i),
            "ts": None if t is None else WHEN,
        }
        for i, t in enumerate(TEXTS)
    ]


def test_copy_out_batches_keeps_every_text_and_null(conn):
    texts = TEXTS * 500
    query = sql.SQL(_query().as_string(conn).replace("%s", "{}")).format(
        *map(sql.Literal, _params(texts))
    )
    batches = list(
        copy_out_batches(
            conn, query, {"text": "string", "number": "float64", "ts": "timestamp"}, 100
        )
    )

    assert len(batches) > 1
    assert [v for b in batches for v in b.column("text").to_pylist()] == texts
