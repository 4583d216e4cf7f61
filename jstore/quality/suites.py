"""A view's expectation suite: the defaults its definition implies, plus the user's file.

Defaults (DESIGN.md "Quality"): the staged columns are the view's; the row count is the
manifest's; join keys and feature_ts are not null; feature_ts lies in [start, end) and on a step
boundary; (keys, feature_ts) is unique; counts are >= 0; min <= avg <= max for the same column
and window; float features hold no NaN or infinity (null is fine: an empty window).

Two of them have no Great Expectations built-in, so `checked_frame` adds a computed column per
check that a built-in expectation then validates, which keeps every check in Data Docs:
`_check_feature_ts_step_offset` (seconds past the step boundary, expected 0) and
`_check_<feature>_non_finite` (the NaN or inf value as text, expected null). NaN needs Arrow:
pandas reads null and NaN alike.

User expectations: `<Settings.expectations_dir>/<view>.json`, a GX 1.x suite JSON whose
`expectations` are `{"type": "expect_…", "kwargs": {…}, "description"?: "…", "meta"?: {…}}`.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from great_expectations.exceptions import ExpectationNotFoundError
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.v1 import ValidationError as GxValidationError

from jstore.config import Settings
from jstore.durations import format_duration
from jstore.model import ResolvedView, WindowedFeatureView
from jstore.repo import DefinitionError, definition_error
from jstore.staging import StagedRun, staged_columns

STEP_OFFSET = "_check_feature_ts_step_offset"
ORDERED_FUNCTIONS = ("min", "avg", "max")
"""For one column and window these hold min <= avg <= max."""
ORDER_TOLERANCE = 1e-9
"""Relative slack of min <= avg <= max: avg = sum / count is rounded, and can exceed max by an ulp
(43.330000000000005 over a max of 43.33)."""
COLUMN_KWARGS = ("column", "column_A", "column_B")
COLUMN_LIST_KWARGS = ("column_list",)


def non_finite_column(feature: str) -> str:
    return f"_check_{feature}_non_finite"


def order_column(low: str, high: str) -> str:
    return f"_check_{low}_le_{high}"


def check_columns(view: ResolvedView) -> list[str]:
    """The computed columns `checked_frame` appends, in order."""
    floats = [non_finite_column(f.name) for f in view.features if f.dtype == "float64"]
    return [*floats, *(order_column(*pair) for pair in ordered_pairs(view)), STEP_OFFSET]


def checked_frame(table: pa.Table, view: ResolvedView) -> pd.DataFrame:
    """The staged rows for the pandas engine, plus the computed check columns.

    The columns are added in Arrow and converted once: a frame grown column by column keeps
    unconsolidated blocks that pandas merges again in every metric (seconds at 100,000 rows).
    """
    for spec in view.features:
        if spec.dtype == "float64" and spec.name in table.column_names:
            values = table[spec.name]
            bad = pc.fill_null(pc.or_(pc.is_nan(values), pc.is_inf(values)), False)
            text = pc.if_else(bad, pc.cast(values, pa.string()), pa.scalar(None, pa.string()))
            table = table.append_column(non_finite_column(spec.name), text)
    for low, high in ordered_pairs(view):
        if low in table.column_names and high in table.column_names:
            violations = _order_violations(table, low, high)
            table = table.append_column(order_column(low, high), violations)
    if "feature_ts" in table.column_names:
        table = table.append_column(STEP_OFFSET, _step_offsets(table["feature_ts"], view))
    return table.to_pandas()


def _order_violations(table: pa.Table, low: str, high: str) -> pa.Array:
    """`"<low> > <high>"` where low exceeds high beyond the tolerance; null where it holds or
    either value is missing."""
    a, b = (pc.cast(table[name], pa.float64()) for name in (low, high))
    slack = pc.multiply(pc.max_element_wise(pc.abs(a), pc.abs(b), pa.scalar(1.0)), ORDER_TOLERANCE)
    bad = pc.fill_null(pc.greater(pc.subtract(a, b), slack), False)
    text = pc.binary_join_element_wise(pc.cast(a, pa.string()), pc.cast(b, pa.string()), " > ")
    return pc.if_else(bad, text, pa.scalar(None, pa.string()))


def _step_offsets(feature_ts: pa.ChunkedArray, view: ResolvedView) -> pa.Array:
    """Seconds past the latest step boundary at or before each feature_ts (null stays null)."""
    micros = pc.cast(pc.cast(feature_ts, pa.timestamp("us", tz="UTC")), pa.int64())
    step_micros = int(view.definition.step.total_seconds()) * 1_000_000
    values = np.asarray(pc.fill_null(micros, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    missing = np.asarray(pc.is_null(micros).to_numpy(zero_copy_only=False), dtype=bool)
    return pa.array(np.mod(values, step_micros) / 1_000_000, mask=missing)


def build_suite(settings: Settings, view: ResolvedView, staged: StagedRun) -> gx.ExpectationSuite:
    expectations = default_expectations(view, staged) + user_expectations(settings, view)
    return gx.ExpectationSuite(name=view.table, expectations=expectations)


def default_expectations(view: ResolvedView, staged: StagedRun) -> list[Expectation]:
    keys = view.join_keys
    step = format_duration(view.definition.step)
    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchOrderedList(
            column_list=staged_columns(view) + check_columns(view),
            description="the staged columns are the view's: join keys, feature_ts, features "
            "(then the computed check columns)",
        ),
        gxe.ExpectTableRowCountToEqual(
            value=staged.rows, description="as many rows as the staged run's manifest says"
        ),
    ]
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(column=column, description=f"{column} is not null")
        for column in [*keys, "feature_ts"]
    ]
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(
            column="feature_ts",
            min_value=staged.start,
            max_value=staged.end,
            strict_max=True,
            description="feature_ts lies in the computed interval [start, end)",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column=STEP_OFFSET,
            value_set=[0],
            description=f"feature_ts is on a step boundary: 0 seconds past a multiple of {step}",
        ),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=[*keys, "feature_ts"],
            description="one row per entity and feature_ts",
        ),
    ]
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(
            column=spec.name, min_value=0, description=f"{spec.name} is a count, >= 0"
        )
        for spec in view.features
        if spec.function in ("count", "count_distinct")
    ]
    expectations += _ordered_aggregates(view)
    expectations += [
        gxe.ExpectColumnValuesToBeNull(
            column=non_finite_column(spec.name),
            description=f"{spec.name} holds no NaN or infinity",
        )
        for spec in view.features
        if spec.dtype == "float64"
    ]
    return expectations


def ordered_pairs(view: ResolvedView) -> list[tuple[str, str]]:
    """(low, high) neighbours in min <= avg <= max among one column and window's features."""
    if not isinstance(view.definition, WindowedFeatureView):
        return []
    by_column_window: dict[tuple[str | None, Any], dict[str, str]] = {}
    for spec in view.features:
        if spec.function in ORDERED_FUNCTIONS:
            by_column_window.setdefault((spec.column, spec.window), {})[spec.function] = spec.name
    pairs: list[tuple[str, str]] = []
    for features in by_column_window.values():
        chain = [features[f] for f in ORDERED_FUNCTIONS if f in features]
        pairs += list(pairwise(chain))
    return pairs


def _ordered_aggregates(view: ResolvedView) -> list[Expectation]:
    """min <= avg <= max per (column, window), up to a relative ORDER_TOLERANCE."""
    return [
        gxe.ExpectColumnValuesToBeNull(
            column=order_column(low, high),
            description=f"{low} <= {high} (relative tolerance {ORDER_TOLERANCE:g})",
        )
        for low, high in ordered_pairs(view)
    ]


class UserExpectation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    kwargs: dict[str, Any]
    description: str | None = None
    meta: dict[str, Any] = {}


class UserSuite(BaseModel):
    """A GX 1.x suite JSON; its other fields (name, id, meta, notes) are not used."""

    model_config = ConfigDict(extra="ignore")
    expectations: list[UserExpectation]


def user_expectations_path(settings: Settings, view: str) -> Path:
    return settings.expectations_dir / f"{view}.json"


def user_expectations(settings: Settings, view: ResolvedView) -> list[Expectation]:
    """The user's expectations for the view, checked against its columns; [] without a file."""
    path = user_expectations_path(settings, view.name)
    if not path.exists():
        return []
    try:
        suite = UserSuite.model_validate_json(path.read_text())
    except ValidationError as e:
        raise definition_error(e, str(path)) from None
    columns = set(staged_columns(view))
    expectations = []
    for i, item in enumerate(suite.expectations):
        where = f"{path}: expectations.{i}"
        for name, value in item.kwargs.items():
            named = [value] if name in COLUMN_KWARGS else []
            named += value if name in COLUMN_LIST_KWARGS and isinstance(value, list) else []
            for column in named:
                if column not in columns:
                    raise DefinitionError(
                        f"{where}.kwargs.{name}: {column!r} is not a column of {view.table}"
                    )
        config = ExpectationConfiguration(
            type=item.type, kwargs=item.kwargs, description=item.description, meta=item.meta
        )
        try:
            expectations.append(config.to_domain_obj())
        except ExpectationNotFoundError:
            raise DefinitionError(
                f"{where}.type: {item.type!r} is not a Great Expectations expectation"
            ) from None
        except GxValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(part) for part in first["loc"] if part != "__root__")
            raise DefinitionError(
                f"{where}.kwargs{'.' + field if field else ''}: {first['msg']}"
            ) from None
    return expectations
