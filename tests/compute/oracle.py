"""A naive reference for windowed views: every step, every window, a scan of the raw events.

Written from DESIGN.md alone ("Semantics of a windowed feature") and the checkpoint rule, to
check the tiled Spark path.
"""

from __future__ import annotations

from datetime import datetime

from jstore.model import FeatureSpec, ResolvedView


def naive_rows(view: ResolvedView, events: list[dict], start: datetime, end: datetime) -> list:
    """Sorted (keys..., feature_ts, features...) of the rows in [start, end): where a feature
    changed since t - step, or at a checkpoint where the value is not the empty one."""
    step, ts = view.definition.step, view.source.timestamp_name
    period = view.definition.checkpoint_period.total_seconds()
    empty = [value(f, [], ts) for f in view.features]
    unique = landed_once(events, view.join_keys)
    rows = []
    for key in sorted({tuple(e[k] for k in view.join_keys) for e in unique}):
        mine = [e for e in unique if tuple(e[k] for k in view.join_keys) == key]
        t = start
        while t < end:
            now = [
                value(f, [e for e in mine if t - f.window <= e[ts] < t], ts) for f in view.features
            ]
            t_prev = t - step
            before = [
                value(f, [e for e in mine if t_prev - f.window <= e[ts] < t_prev], ts)
                for f in view.features
            ]
            checkpoint = t.timestamp() % period == 0
            if now != before or (checkpoint and now != empty):
                rows.append((*key, t, *now))
            t += step
    return sorted(rows)


def landed_once(events: list[dict], keys: list[str]) -> list[dict]:
    """The events with every join key, each landed record once (by partition and offset; a
    table-source row, offset None, is never a duplicate)."""
    seen, unique = set(), []
    for e in events:
        record = (e.get("_partition", 0), e.get("_offset"))
        if any(e.get(k) is None for k in keys) or record in seen:
            continue
        if record[1] is not None:
            seen.add(record)
        unique.append(e)
    return unique


def value(spec: FeatureSpec, window: list[dict], ts: str):
    if spec.function == "count" and spec.column is None:
        return len(window)
    present = [e for e in window if e.get(spec.column) is not None]
    values = [e[spec.column] for e in present]
    match spec.function:
        case "count":
            return len(values)
        case "sum":
            return sum(values)
        case "avg":
            return sum(values) / len(values) if values else None
        case "min":
            return min(values, default=None)
        case "max":
            return max(values, default=None)
        case "count_distinct":
            return len(set(values))
        case "last":
            order = lambda e: (e[ts], e.get("_partition", 0), e["_offset"], e[spec.column])  # noqa: E731
            return max(present, key=order)[spec.column] if present else None
    raise AssertionError(spec.function)
