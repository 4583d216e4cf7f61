"""Only the entities that can have a row in [start, end) go into the window computation.

An entity's rows depend on its own tiles alone, and it can have a row at step `t` only where
jobs/windows.py has a candidate: a tile entering or leaving a window (`tile + step` or
`tile + window + step` in [start, end)), or a checkpoint `C` in [start, end) with a tile in
`[C - max_window, C)`. Every other entity has no row there, so dropping its tiles (a semi-join on
the keys) changes no row, and an hourly run over 30 days of stored tiles windows only the
entities active in its hour and at its windows' far edges (at a checkpoint: every entity with a
tile within the longest window, as it must).

An interval at least as long as the longest window skips the semi-join: every tile of its read
range but those of its last step enters or leaves the longest window inside it, so the filter
would cost one more pass over the tiles (and a job) to drop next to nothing.
"""

from __future__ import annotations

from datetime import datetime
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.tiles import TILE
from jstore.model import ResolvedView, WindowedFeatureView


def tiles_of_changing_entities(
    tiles: DataFrame, view: ResolvedView, start: datetime, end: datetime
) -> DataFrame:
    """The tiles of the entities with a candidate step in [start, end), all of their tiles."""
    definition = view.definition
    assert isinstance(definition, WindowedFeatureView)
    step = int(definition.step.total_seconds())
    period = int(definition.checkpoint_period.total_seconds())
    windows = {int(f.window.total_seconds()) for f in view.features if f.window}
    s, e = int(start.timestamp()), int(end.timestamp())
    if e - s >= max(windows):
        return tiles
    tile = F.col(TILE)
    # plain ranges on `__tile`, so Spark skips the stored tiles' row groups outside them
    conditions = [
        (tile >= s - offset - step) & (tile < e - offset - step) for offset in sorted({0, *windows})
    ]
    first, last = -(-s // period) * period, (e - 1) // period * period
    if first <= last:
        next_checkpoint = tile - F.pmod(tile, F.lit(period)) + period
        reach = F.least(tile + max(windows), F.lit(last))
        near = (tile >= first - max(windows)) & (tile < last)
        conditions.append(near & (F.greatest(next_checkpoint, F.lit(first)) <= reach))
    changing = tiles.where(reduce(lambda a, b: a | b, conditions)).select(*view.join_keys)
    return tiles.join(changing.distinct(), view.join_keys, "left_semi")
