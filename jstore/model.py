"""Feature definitions: entities, sources, feature views and feature services.

The same pydantic models are written in Python feature repos and sent as JSON over REST.
Every name becomes part of a table name or a Redis key, so names are lower-case identifiers
without a double underscore (`__` separates a view from its version and its features).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from jstore.durations import Duration, as_utc, format_duration, is_aligned


def _no_double_underscore(name: str) -> str:
    if "__" in name:
        raise ValueError(f"{name!r} contains '__', which separates views, versions and features")
    return name


Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$"),
    AfterValidator(_no_double_underscore),
]
"""A lower-case identifier, usable as a PostgreSQL column or table name and a Redis key part."""

DType = Literal["string", "int64", "float64", "bool", "timestamp"]
Function = Literal["count", "sum", "avg", "min", "max", "last", "count_distinct"]
NUMERIC: frozenset[str] = frozenset({"int64", "float64"})


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldSpec(Definition):
    name: Name
    dtype: DType


class Entity(Definition):
    kind: Literal["entity"] = "entity"
    name: Name
    join_keys: list[Name] = Field(min_length=1)
    description: str = ""

    @model_validator(mode="after")
    def _unique_keys(self) -> Entity:
        _require_unique(self.join_keys, "join_keys")
        return self


class _Source(Definition):
    name: Name
    schema_: list[FieldSpec] = Field(alias="schema", min_length=1)
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = {}

    TIMESTAMP_FIELD: ClassVar[str]
    """The field that names the event time's column: `timestamp_field` or `timestamp_column`."""

    @property
    def timestamp_name(self) -> str:
        """The column that holds each event's time."""
        return getattr(self, self.TIMESTAMP_FIELD)

    def dtype_of(self, column: str) -> DType | None:
        return next((f.dtype for f in self.schema_ if f.name == column), None)

    @model_validator(mode="after")
    def _timestamp_in_schema(self) -> Self:
        _require_unique([f.name for f in self.schema_], "schema")
        if self.dtype_of(self.timestamp_name) != "timestamp":
            raise ValueError(
                f"{self.TIMESTAMP_FIELD}: {self.timestamp_name!r} must be a schema field of "
                "dtype timestamp"
            )
        return self


class EventSource(_Source):
    """Events on a Kafka topic, one JSON object a message, landed into the lake by the lander."""

    kind: Literal["event"] = "event"
    topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    timestamp_field: Name
    TIMESTAMP_FIELD = "timestamp_field"


class TableSource(_Source):
    """A PostgreSQL table (or query); each row is an event at its `timestamp_column`."""

    kind: Literal["table"] = "table"
    table: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
    query: str | None = None
    timestamp_column: Name
    connection: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,250}$")
    """The database of the table: the id of an Airflow Connection (PostgreSQL) holding it."""
    dsn_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    """Or the name of an environment variable holding its DSN. Neither: the offline store's
    database. A definition names where the credentials are, never holds them."""
    TIMESTAMP_FIELD = "timestamp_column"

    @model_validator(mode="after")
    def _table_or_query(self) -> TableSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("table: give exactly one of table and query")
        if self.connection is not None and self.dsn_env is not None:
            raise ValueError("connection: give at most one of connection and dsn_env")
        return self


Source = Annotated[EventSource | TableSource, Field(discriminator="kind")]


class Aggregation(Definition):
    """One function of one column over one or more windows; `column` is omitted for count."""

    function: Function
    column: Name | None = None
    windows: list[Duration] = Field(min_length=1)
    name: Name | None = None
    """Prefix of the feature names instead of `<column>_<function>`."""

    @model_validator(mode="after")
    def _column_needed(self) -> Aggregation:
        if self.column is None and self.function != "count":
            raise ValueError(f"column: {self.function} needs a column")
        _require_unique([format_duration(w) for w in self.windows], "windows")
        return self

    def feature_name(self, window: timedelta) -> str:
        prefix = self.name or "_".join(p for p in (self.column, self.function) if p)
        return f"{prefix}_{format_duration(window)}"


class FeatureSpec(Definition):
    """A feature as stored and served: its name and type, and how a windowed view computes it."""

    name: Name
    dtype: DType
    function: Function | None = None
    column: str | None = None
    window: Duration | None = None

    @property
    def empty_value(self) -> int | None:
        """The value over an empty window (DESIGN.md "Absent means empty")."""
        return 0 if self.function in ("count", "count_distinct", "sum") else None


class _View(Definition):
    name: Name
    entities: list[Name] = Field(min_length=1)
    source: Name
    step: Duration
    ttl: Duration | None = None
    """Freshness limit: lookups answer `expired` when published coverage lags now by more."""
    retention: Duration | None = None
    owner: str = ""
    tags: dict[str, str] = {}
    description: str = ""
    start: datetime | None = None
    """The first step computed by scheduled runs (backfills start here)."""

    @field_validator("start")
    @classmethod
    def _start_utc(cls, start: datetime | None) -> datetime | None:
        return as_utc(start) if start else None

    @property
    def checkpoint_period(self) -> timedelta:
        """lcm(step, 1 day): at each multiple of it (from the epoch) every non-empty entity gets a
        row, changed or not, so the value at T is always the latest row in [floor(T, P), T]."""
        return timedelta(seconds=math.lcm(int(self.step.total_seconds()), 86400))

    def _check_start(self) -> None:
        _require_unique(self.entities, "entities")
        if self.start is not None and not is_aligned(self.start, self.step):
            raise ValueError(f"start: {self.start.isoformat()} is not aligned to the step")


class WindowedFeatureView(_View):
    kind: Literal["windowed"] = "windowed"
    aggregations: list[Aggregation] = Field(min_length=1)

    @model_validator(mode="after")
    def _windows_fit_step(self) -> WindowedFeatureView:
        self._check_start()
        for i, agg in enumerate(self.aggregations):
            for j, window in enumerate(agg.windows):
                if window % self.step:
                    raise ValueError(
                        f"aggregations.{i}.windows.{j}: window {format_duration(window)} is not a "
                        f"multiple of the step {format_duration(self.step)}"
                    )
        _require_unique(
            [n for agg in self.aggregations for n in map(agg.feature_name, agg.windows)],
            "aggregations",
            what="feature name",
        )
        return self

    @property
    def max_window(self) -> timedelta:
        return max(w for agg in self.aggregations for w in agg.windows)

    def feature_specs(self, source: EventSource | TableSource) -> list[FeatureSpec]:
        specs = []
        for agg in self.aggregations:
            column_dtype = source.dtype_of(agg.column) if agg.column else None
            for window in agg.windows:
                specs.append(
                    FeatureSpec(
                        name=agg.feature_name(window),
                        dtype=_result_dtype(agg.function, column_dtype),
                        function=agg.function,
                        column=agg.column,
                        window=window,
                    )
                )
        return specs


class SqlFeatureView(_View):
    """Spark SQL over `input_data` (the source rows of one window), grouped by the entity keys."""

    kind: Literal["sql"] = "sql"
    window: Duration
    query: str = Field(min_length=1)
    features: list[FieldSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _window_fits_step(self) -> SqlFeatureView:
        self._check_start()
        if self.window % self.step:
            raise ValueError(
                f"window: {format_duration(self.window)} is not a multiple of the "
                f"step {format_duration(self.step)}"
            )
        if "input_data" not in self.query:
            raise ValueError("query: must select from input_data")
        _require_unique([f.name for f in self.features], "features", what="feature name")
        return self

    @property
    def max_window(self) -> timedelta:
        return self.window

    def feature_specs(self, source: EventSource | TableSource) -> list[FeatureSpec]:
        return [FeatureSpec(name=f.name, dtype=f.dtype) for f in self.features]


FeatureView = Annotated[WindowedFeatureView | SqlFeatureView, Field(discriminator="kind")]


class FeatureService(Definition):
    kind: Literal["service"] = "service"
    name: Name
    features: list[str] = Field(min_length=1)
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = {}

    @model_validator(mode="after")
    def _refs_parse(self) -> FeatureService:
        for i, ref in enumerate(self.features):
            try:
                FeatureRef.parse(ref)
            except ValueError as e:
                raise ValueError(f"features.{i}: {e}") from None
        _require_unique(self.features, "features", what="reference")
        return self


class FeatureRef(Definition):
    """`<view>:<feature>`, or pinned to a version: `<view>@v2:<feature>`."""

    view: Name
    feature: Name
    version: int | None = Field(None, ge=1)

    @classmethod
    def parse(cls, text: str) -> FeatureRef:
        head, sep, feature = text.partition(":")
        view, at, version = head.partition("@")
        pinned = version.startswith("v") and version[1:].isdigit() and int(version[1:]) >= 1
        if not sep or (at and not pinned):
            raise ValueError(
                f"{text!r} is not a feature reference like view:feature or view@v2:feature"
            )
        try:
            return cls(view=view, feature=feature, version=int(version[1:]) if at else None)
        except ValidationError:
            raise ValueError(
                f"{text!r}: view and feature must be lower-case names like amount_sum_7d"
            ) from None

    def __str__(self) -> str:
        pin = f"@v{self.version}" if self.version else ""
        return f"{self.view}{pin}:{self.feature}"


class ResolvedView(Definition):
    """A registered view version with what computing, storing and serving it needs."""

    definition: FeatureView
    """The view as defined (windowed or SQL); the rest is derived from it and the registry."""
    version: int = Field(ge=1)
    source: Source
    join_keys: list[str]
    key_dtypes: dict[str, DType]
    features: list[FeatureSpec]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def table(self) -> str:
        """The offline table, and the version part of online keys: `<view>__v<N>`."""
        return f"{self.definition.name}__v{self.version}"

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise KeyError(
            f"feature view {self.definition.name!r} v{self.version} has no feature {name!r}"
        )


def resolve(
    view: WindowedFeatureView | SqlFeatureView,
    version: int,
    entities: dict[str, Entity],
    sources: dict[str, EventSource | TableSource],
) -> ResolvedView:
    """Check a view against its entities and source and derive its keys and feature types."""
    source = sources.get(view.source)
    if source is None:
        raise ValueError(f"source: unknown source {view.source!r}")
    join_keys: list[str] = []
    for i, name in enumerate(view.entities):
        entity = entities.get(name)
        if entity is None:
            raise ValueError(f"entities.{i}: unknown entity {name!r}")
        join_keys += [k for k in entity.join_keys if k not in join_keys]
    key_dtypes = {}
    for key in join_keys:
        dtype = source.dtype_of(key)
        if dtype is None:
            raise ValueError(
                f"entities: join key {key!r} is not in the schema of source {source.name!r}"
            )
        key_dtypes[key] = dtype
    if isinstance(view, WindowedFeatureView):
        for i, agg in enumerate(view.aggregations):
            dtype = source.dtype_of(agg.column) if agg.column else None
            if agg.column and dtype is None:
                raise ValueError(
                    f"aggregations.{i}.column: {agg.column!r} is not in the schema of "
                    f"source {source.name!r}"
                )
            if agg.function in ("sum", "avg") and dtype not in NUMERIC:
                raise ValueError(
                    f"aggregations.{i}.column: {agg.function} needs a numeric column, "
                    f"{agg.column!r} is {dtype}"
                )
    features = view.feature_specs(source)
    clash = sorted({f.name for f in features} & set(join_keys))
    if clash:
        raise ValueError(f"features: {clash[0]!r} is also a join key")
    return ResolvedView(
        definition=view,
        version=version,
        source=source,
        join_keys=join_keys,
        key_dtypes=key_dtypes,
        features=features,
    )


def _result_dtype(function: str, column_dtype: str | None) -> str:
    if function in ("count", "count_distinct"):
        return "int64"
    if function == "avg":
        return "float64"
    return column_dtype or "float64"


def _require_unique(names: list[str], field: str, what: str = "name") -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{field}: duplicate {what} {name!r}")
        seen.add(name)
