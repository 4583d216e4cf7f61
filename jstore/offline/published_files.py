"""Which staged run's Parquet files hold a view table's rows, range by range.

`<schema>.<table>__files(run_id, start, "end", files)`, created with the view's table. Publish
loads the rows of a staged run in [start, end) as they are (publish.py refuses a run with a row
outside its interval), and `record_run` records the run over [start, end), with the names and
sizes of its Parquet files, in the publish's transaction; retention drops the rows before a
boundary and `expire_before` drops the ranges' parts before it in retention's transaction. So,
at every commit:

- the ranges do not overlap (an exclusion constraint holds it) and none is empty;
- the table's rows are exactly, for each range, the rows the run's files held when it was
  published, with start <= feature_ts < "end".

A staged run's folder is not immutable: computing the same run id again (a cleared Airflow DAG
run, `jstore compute --run-id`) overwrites it, whether or not the new rows are ever validated
and published, and a user may delete it. So `file_ranges` checks that the run's Parquet files
are still the ones recorded (Spark names each write's files anew) and answers None when they are
not, as it does for a view table created before this module, which has no files table: the
caller reads PostgreSQL then. Anything but a publish that writes the view's table (a hand
UPDATE, DELETE, INSERT or TRUNCATE) makes its rows differ from the files, so a statement
trigger on the table drops the files table then (`STALE_TRIGGER`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql
from psycopg.types.json import Jsonb

from jstore.arrow_types import ARROW_TYPES
from jstore.config import Settings
from jstore.durations import as_utc
from jstore.lake_fs import LakePath
from jstore.model import ResolvedView
from jstore.offline.tables import side_table_id, side_table_name, table_id
from jstore.staging import PARQUET_FILES, StagedRun, as_staged, staged_schema

FILES_SUFFIX = "__files"
STALE_TRIGGER = "jstore_files_stale"
"""A view table's statement trigger (and the schema's function it runs) dropping the files
table when the table is written outside a publish (a hand UPDATE, DELETE, INSERT or TRUNCATE
of the table): its rows may then differ from the files, and the export reads PostgreSQL."""
PUBLISHING = "jstore.publishing"
"""The setting a publish's transaction sets to 'on' (`publishing`), which the trigger spares."""


def files_table(schema: str, view: ResolvedView) -> sql.Identifier:
    """`<schema>.<table>__files`."""
    return side_table_id(schema, view, FILES_SUFFIX)


def create_files_table(conn: psycopg.Connection, schema: str, view: ResolvedView) -> None:
    """Create the files table of a view table created in the same transaction, and the
    trigger that drops it when the table is written by anything but a publish.

    A files table left behind by a dropped view table describes rows that are gone: it is
    dropped first, so the new table starts with no range, as it starts with no row."""
    table = files_table(schema, view)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    conn.execute(
        sql.SQL(
            'CREATE TABLE {} (run_id text NOT NULL, start timestamptz NOT NULL, "end" timestamptz '
            'NOT NULL, files jsonb NOT NULL, CHECK (start < "end"), '
            'EXCLUDE USING gist (tstzrange(start, "end") WITH &&))'
        ).format(table)
    )
    function = sql.Identifier(schema, STALE_TRIGGER)
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF current_setting({}, true) IS DISTINCT FROM 'on' THEN "
            "EXECUTE format('DROP TABLE IF EXISTS %I.%I', TG_TABLE_SCHEMA, TG_ARGV[0]); "
            "END IF; RETURN NULL; END $$"
        ).format(function, sql.Literal(PUBLISHING))
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} "
            "FOR EACH STATEMENT EXECUTE FUNCTION {}({})"
        ).format(
            sql.Identifier(STALE_TRIGGER),
            table_id(schema, view),
            function,
            sql.Literal(side_table_name(view, FILES_SUFFIX)),
        )
    )


def publishing(tx: psycopg.Connection) -> None:
    """Mark the transaction `tx` as a publish's: its writes to a view's table keep the files
    table (record_run describes them)."""
    tx.execute(sql.SQL("SET LOCAL {} = 'on'").format(sql.Identifier(PUBLISHING)))


def record_run(tx: psycopg.Connection, schema: str, view: ResolvedView, staged: StagedRun) -> None:
    """Record that [staged.start, staged.end) holds the staged run's rows, in the publish's
    transaction `tx`: the ranges are cut out of [start, end) (`_cut`), then the run's range is
    added, with its Parquet files' names and sizes (one listing of its folder). Nothing without
    a files table."""
    table = files_table(schema, view)
    if not _exists(tx, table):
        return
    _cut(tx, table, staged.start, staged.end)
    tx.execute(
        sql.SQL('INSERT INTO {} (run_id, start, "end", files) VALUES (%s, %s, %s, %s)').format(
            table
        ),
        [staged.run_id, staged.start, staged.end, Jsonb(_parquet_sizes(staged))],
    )


def expire_before(
    conn: psycopg.Connection, schema: str, view: ResolvedView, boundary: datetime
) -> None:
    """Cut the ranges' parts before `boundary`, in retention's transaction: the rows it drops
    are all before `boundary`, the rows it keeps all at or after it. Nothing without a files
    table."""
    table = files_table(schema, view)
    if _exists(conn, table):
        _cut(conn, table, "-infinity", boundary)


def _cut(conn: psycopg.Connection, table: sql.Identifier, start: object, end: object) -> None:
    """Take [start, end) out of the ranges: those overlapping it are deleted and their parts
    outside it put back (a range holding it becomes two), in one statement."""
    conn.execute(
        sql.SQL(
            "WITH cut AS (DELETE FROM {table} "
            'WHERE start < %(end)s::timestamptz AND "end" > %(start)s::timestamptz '
            'RETURNING run_id, start, "end", files) '
            'INSERT INTO {table} (run_id, start, "end", files) '
            "SELECT run_id, start, %(start)s::timestamptz, files FROM cut "
            "WHERE start < %(start)s::timestamptz "
            'UNION ALL SELECT run_id, %(end)s::timestamptz, "end", files FROM cut '
            'WHERE "end" > %(end)s::timestamptz'
        ).format(table=table),
        {"start": start, "end": end},
    )


@dataclass(frozen=True)
class FileRange:
    """The table's rows with start <= feature_ts < end are those of these Parquet files."""

    run_id: str
    start: datetime
    end: datetime
    files: tuple[LakePath, ...]
    """The staged run's Parquet files (none for a run of no rows)."""
    run_rows: int
    """The staged run's rows, all read to find those of the range (its manifest's count)."""


def file_ranges(
    conn: psycopg.Connection,
    settings: Settings,
    schema: str,
    view: ResolvedView,
    low: datetime,
    high: datetime,
) -> list[FileRange] | None:
    """The recorded ranges overlapping [low, high] (both ends included), ordered by start, each
    with its staged run's files.

    None when the view's table has no files table, or when a run in range is no longer the
    complete staged run that was published (its folder or manifest is gone, its manifest names
    another view version or an interval not holding the range, or its Parquet files are not
    the ones recorded, by name and size): the caller reads PostgreSQL then. Costs a read of the
    manifest and a listing of the folder per run."""
    table = files_table(schema, view)
    if not _exists(conn, table):
        return None
    recorded = conn.execute(
        sql.SQL(
            'SELECT run_id, start, "end", files FROM {} WHERE start <= %s AND "end" > %s '
            "ORDER BY start"
        ).format(table),
        [high, low],
    ).fetchall()
    runs: dict[str, tuple[StagedRun, dict[str, int]] | None] = {}
    ranges = []
    for run_id, start, end, files in recorded:
        if run_id not in runs:
            staged = _published_run(settings, view, run_id)
            runs[run_id] = None if staged is None else (staged, _parquet_sizes(staged))
        found = runs[run_id]
        start, end = as_utc(start), as_utc(end)
        if found is None or found[1] != files or not found[0].start <= start < end <= found[0].end:
            return None
        paths = tuple(found[0].path / name for name in sorted(files))
        ranges.append(FileRange(run_id, start, end, paths, found[0].rows))
    return ranges


def read_rows(
    ranges: list[FileRange],
    view: ResolvedView,
    columns: list[str],
    low: datetime,
    high: datetime,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The rows of the view's ranges with start <= feature_ts < end and low <= feature_ts <=
    high: `columns` (staged columns, in that order), typed as staged (cast as publish casts
    them), a batch of at most `batch_rows` rows at a time (empty batches are skipped)."""
    read = columns if "feature_ts" in columns else [*columns, "feature_ts"]
    staged = staged_schema(view)
    kept = pa.schema([staged.field(name) for name in read])
    stamp = ARROW_TYPES["timestamp"]
    for span in ranges:
        first = pa.scalar(max(span.start, as_utc(low)), stamp)
        end, last = pa.scalar(span.end, stamp), pa.scalar(as_utc(high), stamp)
        for file in span.files:
            with file.open_input() as handle:
                parquet = pq.ParquetFile(handle)
                for batch in parquet.iter_batches(batch_size=batch_rows, columns=read):
                    batch = as_staged(batch, kept)
                    ts = batch.column("feature_ts")
                    inside = pc.and_(
                        pc.and_(pc.greater_equal(ts, first), pc.less(ts, end)),
                        pc.less_equal(ts, last),
                    )
                    if inside.true_count < batch.num_rows:  # a copy of every column otherwise
                        batch = batch.filter(inside)
                    if batch.num_rows:
                        yield batch.select(columns)


def _published_run(settings: Settings, view: ResolvedView, run_id: str) -> StagedRun | None:
    """The staged run `run_id` of the view version, or None when it is no longer complete."""
    try:
        staged = StagedRun.find(settings, view.name, run_id)
    except FileNotFoundError:
        return None
    if (staged.view, staged.version, staged.run_id) != (view.name, view.version, run_id):
        return None
    return staged


def _parquet_sizes(staged: StagedRun) -> dict[str, int]:
    """The staged run's Parquet files (`StagedRun.parquet_files`): name -> bytes."""
    return {
        name: size
        for name, size in staged.path.files().items()
        if "/" not in name and fnmatch.fnmatchcase(name, PARQUET_FILES)
    }


def _exists(conn: psycopg.Connection, table: sql.Identifier) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table.as_string(conn)]).fetchone()
    return bool(row and row[0])
