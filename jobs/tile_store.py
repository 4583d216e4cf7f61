"""Stored tiles: each view version's per-step tiles kept in the lake, so a run reads raw events
only where tiles are missing or stale.

Layout (docs/compute.md, "Stored tiles"):

    <lake>/tiles/<view>__v<N>/block=<YYYY-MM-DD>/part-<id>.parquet
    <lake>/tiles/<view>__v<N>/block=<YYYY-MM-DD>/_manifest.json

A block is one checkpoint period `[b, b + P)`, P = lcm(step, 1 day), so it holds whole tiles and
whole landing `event_date` partitions. Its manifest (written last, temp name then rename) names
what the tiles are a function of: the tile format, the view version, the tile definition
(step, keys, source schema, partial columns) and every landed file of the block's days (path,
size, modification time); and the part files that hold them.

Freshness, block by block, against the current listing of the block's days:
- same definition and same files: fresh, its parts are read as they are;
- the same files plus new ones (a later batch, late events, a Kafka record landed twice): the
  tiles of the steps the new files touch (from their footers' event-time statistics) are rebuilt
  from ALL the block's files for those steps, with the usual dedup; the others are kept;
- a file gone or changed (a re-extracted table interval), another definition, no manifest, or
  `retile`: the whole block is rebuilt from its files.
Rebuilt tiles never merge with stored ones: a tile is always built in one pass from every event
of its step, in one canonical order (`canonical_tiles`), so float sums and sketches are bit for
bit those of a re-tile. Every stale block of a run is rebuilt in one Spark job and rewritten as
one part (always compact); the old parts are deleted after the new manifest is in place.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import reduce

from pydantic import BaseModel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.lake_files import FileEntry, LakeFiles
from jobs.landing import RECORD_ID, first_copies, landed_files, landed_rows, landing_schema
from jobs.tiles import TILE, tile_start, tiles_in_order
from jstore.model import ResolvedView, WindowedFeatureView
from jstore.staging import parquet_write_options

TILE_FORMAT = 2
"""Bump when the stored partials change meaning (names and types are checked by themselves).
2: tiles aggregated in a window over each tile's sorted rows (`tiles_in_order`); format 1's hash
aggregation could add a float sum in pieces when it spilled, so its blocks are rebuilt."""
MANIFEST = "_manifest.json"
BLOCK = "__block"


class StoredFile(BaseModel):
    path: str
    size: int
    mtime_ns: int


class BlockManifest(BaseModel):
    format: int
    view: str
    version: int
    definition: dict
    """What the tiles are a function of besides the files; any difference means rebuild."""
    block: str
    files: list[StoredFile]
    """The landed files of the block's days the tiles were built from."""
    parts: list[str]
    built_at: datetime


@dataclass(frozen=True)
class Block:
    start: int
    """Epoch seconds, a multiple of `period`."""
    period: int

    @property
    def name(self) -> str:
        return datetime.fromtimestamp(self.start, UTC).date().isoformat()

    @property
    def days(self) -> list[str]:
        first = datetime.fromtimestamp(self.start, UTC).date()
        return [(first + timedelta(days=i)).isoformat() for i in range(self.period // 86400)]


@dataclass
class BlockPlan:
    block: Block
    files: list[FileEntry]
    manifest: BlockManifest | None
    rebuild: list[tuple[int, int]] = field(default_factory=list)
    """Tile-time ranges [lo, hi) to rebuild from raw events; empty when the block is fresh."""
    reason: str = "fresh"


def blocks_of(read_start: datetime, read_end: datetime, period: int) -> list[Block]:
    """The blocks holding the tiles of [read_start, read_end)."""
    first = int(read_start.timestamp()) // period * period
    end = int(read_end.timestamp())
    return [Block(b, period) for b in range(first, end, period)]


def canonical_tiles(rows: DataFrame, view: ResolvedView, step: int) -> DataFrame:
    """The tiles of `rows` (jobs/tiles.py `tiles_in_order`): each entity's events in one total
    order of what the tiles read (event time, partition, offset, topic, then the aggregated
    columns), aggregated where they were sorted: a tile's float sum and sketch then never
    depend on which files, splits or Spark tasks its events came from. `rows` are the landed
    rows with their duplicates: the copies of a Kafka record are dropped in the same sorted
    pass (`first_copies`), so the events are shuffled once, by entity.

    Only the columns the tiles read are kept before the shuffle (`tile_inputs`), and ordered
    by: two rows equal in all of them give the same partials in either order, so ordering them
    further would change no bit; two rows that differ in one are ordered by it. The copies of a
    Kafka record are identical rows, so they stay neighbours."""
    keys, ts = view.join_keys, view.source.timestamp_name
    order = [ts, "_partition", "_offset", "_topic"]
    inputs = tile_inputs(view)
    values = [c for c in inputs if c not in (*keys, *order)]
    by_tile = [*keys, TILE]
    ordered = (
        rows.select(*inputs)
        .withColumn(TILE, tile_start(view, step))
        .repartition(*keys)
        .sortWithinPartitions(*by_tile, *order, *values)
    )
    return tiles_in_order(first_copies(ordered, by_tile, order), view, [*order, *values])


def tile_inputs(view: ResolvedView) -> list[str]:
    """The landed columns the tiles read: the join keys, the event time, the Kafka record id
    (to drop copies, and to order `last`'s ties), and the aggregated columns in schema order."""
    keys, ts = view.join_keys, view.source.timestamp_name
    aggregated = {spec.column for spec in view.features} - {*keys, ts}
    return [*keys, ts, *RECORD_ID, *(f.name for f in view.source.schema_ if f.name in aggregated)]


class TileStore:
    """The stored tiles of one view version in one lake."""

    def __init__(self, spark: SparkSession, lake: LakeFiles, view: ResolvedView):
        definition = view.definition
        assert isinstance(definition, WindowedFeatureView)
        self.spark, self.lake, self.view = spark, lake, view
        self.folder = f"tiles/{view.table}"
        self.step = int(definition.step.total_seconds())
        self.period = int(definition.checkpoint_period.total_seconds())
        empty = spark.createDataFrame([], landing_schema(view.source))
        self.schema = canonical_tiles(empty, view, self.step).schema
        self.definition = {
            "step": self.step,
            "join_keys": view.join_keys,
            "source": view.source.name,
            "timestamp": view.source.timestamp_name,
            "source_schema": {f.name: f.dtype for f in view.source.schema_},
            "tiles": self.schema.jsonValue(),
        }

    def tiles(self, read_start: datetime, read_end: datetime, *, retile: bool = False) -> DataFrame:
        """One row per (keys, `__tile`) with events in [read_start, read_end): stale blocks
        rebuilt and stored first, then every block read from the store."""
        plans = self.plan(read_start, read_end, retile=retile)
        self.refresh(plans)
        return self.read(plans, read_start, read_end)

    def plan(self, read_start: datetime, read_end: datetime, *, retile: bool) -> list[BlockPlan]:
        plans = []
        for block in blocks_of(read_start, read_end, self.period):
            files = landed_files(self.lake, self.view.source.name, block.days)
            manifest = self._manifest(block)
            plan = BlockPlan(block, files, manifest)
            if manifest is None and not files:
                plan.reason = "empty"
            elif retile:
                self._rebuild_all(plan, "retile")
            elif manifest is None:
                self._rebuild_all(plan, "missing")
            elif (manifest.format, manifest.definition) != (TILE_FORMAT, self.definition):
                self._rebuild_all(plan, "definition")
            else:
                self._compare_files(plan, manifest)
            plans.append(plan)
        return plans

    def refresh(self, plans: list[BlockPlan]) -> None:
        """Rebuild the stale blocks' tiles in one Spark job, then swap each block's manifest."""
        stale = [p for p in plans if p.rebuild]
        if not stale:
            return
        files = sorted({f.path for p in stale for f in p.files})
        in_ranges = self._events_in(_merged([r for p in stale for r in p.rebuild]))
        rows = landed_rows(
            self.spark,
            [self.lake.spark_path(f) for f in files],
            self.view.source,
            self.view.join_keys,
            in_ranges,
        )
        tiles = canonical_tiles(rows, self.view, self.step)
        for plan in stale:
            if plan.manifest and plan.manifest.parts and plan.reason == "new files":
                kept = self._read_parts(plan).where(~self._tiles_in(plan))
                tiles = tiles.unionByName(kept)
        block_start = F.col(TILE) - F.pmod(F.col(TILE), F.lit(self.period))
        build = f"{self.folder}/_build-{uuid.uuid4().hex}"
        (
            tiles.withColumn(BLOCK, block_start)
            .repartition(BLOCK)
            .write.options(**self._write_options())
            .partitionBy(BLOCK)
            .parquet(self.lake.spark_path(build))
        )
        written = self.lake.list_files_recursive(build)
        for plan in stale:
            self._swap(plan, [f.path for f in written if f"/{BLOCK}={plan.block.start}/" in f.path])
        self.lake.delete_dir(build)

    def read(self, plans: list[BlockPlan], read_start: datetime, read_end: datetime) -> DataFrame:
        paths = [
            self.lake.spark_path(f"{self._block_folder(p.block)}/{part}")
            for p in plans
            if p.manifest
            for part in p.manifest.parts
        ]
        if not paths:
            return self.spark.createDataFrame([], self.schema)
        tile = F.col(TILE)
        return (
            self.spark.read.schema(self.schema)
            .parquet(*paths)
            .where((tile >= int(read_start.timestamp())) & (tile < int(read_end.timestamp())))
        )

    def _write_options(self) -> dict[str, str]:
        doubles = [f.name for f in self.schema.fields if isinstance(f.dataType, T.DoubleType)]
        return parquet_write_options(doubles)

    def _block_folder(self, block: Block) -> str:
        return f"{self.folder}/block={block.name}"

    def _manifest(self, block: Block) -> BlockManifest | None:
        text = self.lake.read_text(f"{self._block_folder(block)}/{MANIFEST}")
        return BlockManifest.model_validate_json(text) if text else None

    def _rebuild_all(self, plan: BlockPlan, reason: str) -> None:
        block = plan.block
        plan.rebuild, plan.reason = [(block.start, block.start + block.period)], reason

    def _compare_files(self, plan: BlockPlan, manifest: BlockManifest) -> None:
        """Fresh, the steps touched by new files only, or the whole block (a file gone or
        changed)."""
        stored = {f.path: (f.size, f.mtime_ns) for f in manifest.files}
        current = {f.path: (f.size, f.mtime_ns) for f in plan.files}
        if any(current.get(path) != stat for path, stat in stored.items()):
            return self._rebuild_all(plan, "changed files")
        block = plan.block
        ranges = [
            (max(lo, block.start), min(hi, block.start + block.period))
            for path in sorted(current.keys() - stored.keys())
            if (span := self._event_times(path, block))
            for lo, hi in [span]
        ]
        if ranges:
            plan.rebuild, plan.reason = _merged([r for r in ranges if r[0] < r[1]]), "new files"
        return None

    def _event_times(self, path: str, block: Block) -> tuple[int, int] | None:
        """The tile-time range [lo, hi) a landed file's events fall in, from its footer's
        statistics: None for an empty file, the whole block when a row group has none (or
        statistics that are not timestamps, as INT96 columns have)."""
        metadata = self.lake.parquet_metadata(path)
        names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
        column = names.index(self.view.source.timestamp_name)
        low = high = None
        for i in range(metadata.num_row_groups):
            group = metadata.row_group(i)
            if group.num_rows == 0:
                continue
            stats = group.column(column).statistics
            if stats is None or not stats.has_min_max or not isinstance(stats.min, datetime):
                return block.start, block.start + block.period
            first, last = _seconds(stats.min), _seconds(stats.max)
            low = first if low is None else min(low, first)
            high = last if high is None else max(high, last)
        if low is None or high is None:
            return None
        return low - low % self.step, high - high % self.step + self.step

    def _events_in(self, ranges: list[tuple[int, int]]) -> Column:
        """The events of these tile-time ranges (timestamp literals: pushed down to Parquet), as
        few ranges as possible: one range per block (61 ORs of two timestamp comparisons for a
        first run) made the filter of every landed row cost more than building the tiles."""
        ts = F.col(self.view.source.timestamp_name)
        return _any((ts >= F.lit(_at(lo))) & (ts < F.lit(_at(hi))) for lo, hi in ranges)

    def _tiles_in(self, plan: BlockPlan) -> Column:
        tile = F.col(TILE)
        return _any((tile >= lo) & (tile < hi) for lo, hi in plan.rebuild)

    def _read_parts(self, plan: BlockPlan) -> DataFrame:
        assert plan.manifest is not None
        folder = self._block_folder(plan.block)
        paths = [self.lake.spark_path(f"{folder}/{part}") for part in plan.manifest.parts]
        return self.spark.read.schema(self.schema).parquet(*paths)

    def _swap(self, plan: BlockPlan, written: list[str]) -> None:
        """Move the block's new parts in, write its manifest, then delete the old parts."""
        folder = self._block_folder(plan.block)
        build_id = uuid.uuid4().hex[:12]
        parts = []
        for i, path in enumerate(written):
            part = f"part-{build_id}-{i:05d}.parquet"
            self.lake.move(path, f"{folder}/{part}")
            parts.append(part)
        manifest = BlockManifest(
            format=TILE_FORMAT,
            view=self.view.name,
            version=self.view.version,
            definition=self.definition,
            block=plan.block.name,
            files=[StoredFile(path=f.path, size=f.size, mtime_ns=f.mtime_ns) for f in plan.files],
            parts=parts,
            built_at=datetime.now(UTC),
        )
        self.lake.write_text(f"{folder}/{MANIFEST}", manifest.model_dump_json(indent=1))
        for old in plan.manifest.parts if plan.manifest else []:
            self.lake.delete_file(f"{folder}/{old}")
        plan.manifest = manifest


def _seconds(moment: datetime) -> int:
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() // 1)


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _any(conditions) -> Column:
    return reduce(lambda a, b: a | b, conditions)
