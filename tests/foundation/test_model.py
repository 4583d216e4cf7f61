"""The model: definitions in Python and as JSON, derived feature names, and every refusal.

Each bad definition is refused with one line that names the object and the field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from jstore.model import (
    Aggregation,
    Entity,
    EventSource,
    FeatureRef,
    FeatureService,
    SqlFeatureView,
    TableSource,
    WindowedFeatureView,
)
from jstore.repo import DefinitionError, FeatureRepo, definition_error, load_repo, parse_definition

SCHEMA = [
    {"name": "user_id", "dtype": "string"},
    {"name": "amount", "dtype": "float64"},
    {"name": "ts", "dtype": "timestamp"},
]
ENTITY = {"name": "user", "join_keys": ["user_id"]}
EVENTS = {"kind": "event", "name": "events", "topic": "events", "timestamp_field": "ts"}
EVENTS |= {"schema": SCHEMA}
TABLE = {"kind": "table", "name": "rows", "table": "public.rows", "timestamp_column": "ts"}
TABLE |= {"schema": SCHEMA}
VIEW = {
    "kind": "windowed",
    "name": "spend",
    "entities": ["user"],
    "source": "events",
    "step": "1h",
    "aggregations": [{"function": "sum", "column": "amount", "windows": ["1h", "1d"]}],
}
SQL_VIEW = {
    "kind": "sql",
    "name": "spread",
    "entities": ["user"],
    "source": "events",
    "step": "1h",
    "window": "1d",
    "query": "SELECT user_id, MAX(amount) - MIN(amount) AS spread FROM input_data GROUP BY 1",
    "features": [{"name": "spread", "dtype": "float64"}],
}
SERVICE = {"name": "model_v1", "features": ["spend:amount_sum_1h"]}
CLASSES = {
    "entity": Entity,
    "event": EventSource,
    "table": TableSource,
    "windowed": WindowedFeatureView,
    "sql": SqlFeatureView,
    "feature service": FeatureService,
}
BASES = {
    "entity": ENTITY,
    "event": EVENTS,
    "table": TABLE,
    "windowed": VIEW,
    "sql": SQL_VIEW,
    "feature service": SERVICE,
}
REST_KIND = {
    "event": "source",
    "table": "source",
    "windowed": "feature view",
    "sql": "feature view",
}


def with_changes(shape: str, **changes: Any) -> dict[str, Any]:
    data = {**BASES[shape], **changes}
    return {k: v for k, v in data.items() if v is not None}


# Valid definitions ---------------------------------------------------------------------------


def test_windowed_feature_names_are_column_function_window_in_declaration_order():
    view = WindowedFeatureView(
        name="spend",
        entities=["user"],
        source="events",
        step="1h",
        aggregations=[
            Aggregation(function="count", windows=["1h", "1d"]),
            Aggregation(function="sum", column="amount", windows=["1h", "2w"]),
            Aggregation(function="max", column="amount", windows=["7d"], name="biggest"),
        ],
    )
    source = parse_definition("source", EVENTS)
    specs = view.feature_specs(source)
    assert [(f.name, f.dtype, f.function, f.column) for f in specs] == [
        ("count_1h", "int64", "count", None),
        ("count_1d", "int64", "count", None),
        ("amount_sum_1h", "float64", "sum", "amount"),
        ("amount_sum_14d", "float64", "sum", "amount"),
        ("biggest_7d", "float64", "max", "amount"),
    ]
    assert [f.window for f in specs] == [timedelta(hours=h) for h in (1, 24, 1, 336, 168)]


@pytest.mark.parametrize(
    ("function", "column_dtype", "dtype", "empty"),
    [
        ("count", None, "int64", 0),
        ("count_distinct", "string", "int64", 0),
        ("sum", "int64", "int64", 0),
        ("sum", "float64", "float64", 0),
        ("avg", "int64", "float64", None),
        ("min", "string", "string", None),
        ("max", "float64", "float64", None),
        ("last", "timestamp", "timestamp", None),
    ],
)
def test_feature_types_and_empty_window_values(function, column_dtype, dtype, empty):
    schema = [{"name": "ts", "dtype": "timestamp"}, {"name": "user_id", "dtype": "string"}]
    if column_dtype and column_dtype != "timestamp":
        schema.append({"name": "x", "dtype": column_dtype})
    column = None if column_dtype is None else ("ts" if column_dtype == "timestamp" else "x")
    repo = FeatureRepo.of(
        Entity(**ENTITY),
        parse_definition("source", {**EVENTS, "schema": schema}),
        WindowedFeatureView(
            name="v",
            entities=["user"],
            source="events",
            step="1h",
            aggregations=[Aggregation(function=function, column=column, windows=["1h"])],
        ),
    )
    [spec] = repo.resolve("v", 1).features
    assert (spec.dtype, spec.empty_value) == (dtype, empty)


def test_a_resolved_view_has_ordered_unique_join_keys_and_its_versioned_table():
    schema = [*SCHEMA, {"name": "merchant_id", "dtype": "int64"}]
    repo = FeatureRepo.of(
        Entity(**ENTITY),
        Entity(name="pair", join_keys=["merchant_id", "user_id"]),
        parse_definition("source", {**EVENTS, "schema": schema}),
        parse_definition("feature view", {**VIEW, "entities": ["user", "pair"]}),
    )
    resolved = repo.resolve("spend", 3)
    assert resolved.join_keys == ["user_id", "merchant_id"]
    assert resolved.key_dtypes == {"user_id": "string", "merchant_id": "int64"}
    assert resolved.table == "spend__v3"
    assert resolved.feature("amount_sum_1d").window == timedelta(days=1)
    with pytest.raises(KeyError, match="feature view 'spend' v3 has no feature 'nope'"):
        resolved.feature("nope")


@pytest.mark.parametrize("shape", list(BASES))
def test_json_round_trip_gives_the_same_definition(shape):
    kind = REST_KIND.get(shape, shape)
    definition = parse_definition(kind, BASES[shape])
    assert type(definition) is CLASSES[shape]
    as_json = definition.model_dump(mode="json", by_alias=True)
    assert parse_definition(kind, as_json) == definition


def test_json_durations_and_start_are_normalized():
    start = "2024-05-01T02:00:00+02:00"
    view = parse_definition("feature view", {**VIEW, "step": "60m", "start": start, "ttl": "2h"})
    assert view.step == timedelta(hours=1)
    assert view.start == datetime(2024, 5, 1, tzinfo=UTC)
    dumped = view.model_dump(mode="json")
    assert (dumped["step"], dumped["ttl"], dumped["start"]) == ("1h", "2h", "2024-05-01T00:00:00Z")
    assert dumped["aggregations"][0]["windows"] == ["1h", "1d"]


def test_every_example_definition_survives_json():
    repo = load_repo(Path(__file__).resolve().parents[2] / "examples" / "ecommerce")
    assert sorted(repo.views) == [
        "merchant_sales",
        "user_big_spends",
        "user_categories",
        "user_purchases",
    ]
    for kind, items in (
        ("entity", repo.entities),
        ("source", repo.sources),
        ("feature view", repo.views),
        ("feature service", repo.services),
    ):
        for d in items.values():
            assert parse_definition(kind, d.model_dump(mode="json", by_alias=True)) == d


@pytest.mark.parametrize(
    ("text", "view", "version", "feature"),
    [
        ("spend:amount_sum_1h", "spend", None, "amount_sum_1h"),
        ("spend@v2:count_1d", "spend", 2, "count_1d"),
    ],
)
def test_feature_references(text, view, version, feature):
    ref = FeatureRef.parse(text)
    assert (ref.view, ref.version, ref.feature) == (view, version, feature)
    assert str(ref) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spend", "'spend' is not a feature reference like view:feature or view@v2:feature"),
        ("spend@2:f", "'spend@2:f' is not a feature reference"),
        ("spend@v0:f", "'spend@v0:f' is not a feature reference"),
        ("spend@v:f", "'spend@v:f' is not a feature reference"),
        ("Spend:f", "'Spend:f': view and feature must be lower-case names"),
        ("spend:a:b", "'spend:a:b': view and feature must be lower-case names"),
    ],
)
def test_bad_feature_references(text, message):
    with pytest.raises(ValueError) as refused:
        FeatureRef.parse(text)
    assert str(refused.value).startswith(message)


# Refused definitions: one line naming the object and the field -------------------------------

REFUSED = [
    # (shape, changes, the exact line from parse_definition)
    ("entity", {"name": "User"}, "entity 'User': name: String should match pattern"),
    ("entity", {"name": "9user"}, "entity '9user': name: String should match pattern"),
    ("entity", {"name": "a__b"}, "entity 'a__b': name: 'a__b' contains '__', which separates"),
    ("entity", {"join_keys": []}, "entity 'user': join_keys: List should have at least 1 item"),
    ("entity", {"join_keys": ["u", "u"]}, "entity 'user': join_keys: duplicate name 'u'"),
    ("entity", {"join_keys": ["user-id"]}, "entity 'user': join_keys.0: String should match"),
    ("entity", {"colour": "red"}, "entity 'user': colour: Extra inputs are not permitted"),
    ("event", {"name": "x" * 64}, f"source '{'x' * 64}': name: String should match pattern"),
    ("event", {"kind": None}, "source 'events': kind: Unable to extract tag using discriminator"),
    ("event", {"kind": "file"}, "source 'events': kind: Input tag 'file' found using 'kind'"),
    ("event", {"topic": "a topic"}, "source 'events': topic: String should match pattern"),
    ("event", {"timestamp_field": "when"}, "source 'events': timestamp_field: 'when' must be a"),
    ("event", {"timestamp_field": "amount"}, "source 'events': timestamp_field: 'amount' must be"),
    ("event", {"schema": []}, "source 'events': schema: List should have at least 1 item"),
    (
        "event",
        {"schema": [*SCHEMA, {"name": "ts", "dtype": "string"}]},
        "source 'events': schema: duplicate name 'ts'",
    ),
    (
        "event",
        {"schema": [*SCHEMA, {"name": "x", "dtype": "decimal"}]},
        "source 'events': schema.3.dtype: Input should be 'string', 'int64', 'float64', 'bool'",
    ),
    ("table", {"table": "rows; drop"}, "source 'rows': table: String should match pattern"),
    ("table", {"query": "SELECT 1"}, "source 'rows': table: give exactly one of table and query"),
    ("table", {"table": None}, "source 'rows': table: give exactly one of table and query"),
    ("table", {"timestamp_column": "t"}, "source 'rows': timestamp_column: 't' must be a schema"),
    (
        "windowed",
        {"aggregations": [{"function": "sum", "column": "amount", "windows": ["1h", "90m"]}]},
        "feature view 'spend': aggregations.0.windows.1: window 90m is not a multiple of "
        "the step 1h",
    ),
    (
        "windowed",
        {"aggregations": [{"function": "median", "column": "amount", "windows": ["1h"]}]},
        "feature view 'spend': aggregations.0.function: Input should be 'count', 'sum', 'avg',",
    ),
    (
        "windowed",
        {"aggregations": [{"function": "count", "windows": ["1h"]}] * 2},
        "feature view 'spend': aggregations: duplicate feature name 'count_1h'",
    ),
    (
        "windowed",
        {
            "aggregations": [
                {"function": "count", "windows": ["1d"]},
                {"function": "sum", "column": "amount", "windows": ["24h"], "name": "count"},
            ]
        },
        "feature view 'spend': aggregations: duplicate feature name 'count_1d'",
    ),
    (
        "windowed",
        {"aggregations": [{"function": "sum", "column": "amount", "windows": ["1d", "24h"]}]},
        "feature view 'spend': aggregations.0: windows: duplicate name '1d'",
    ),
    (
        "windowed",
        {"aggregations": [{"function": "avg", "windows": ["1h"]}]},
        "feature view 'spend': aggregations.0: column: avg needs a column",
    ),
    ("windowed", {"aggregations": []}, "feature view 'spend': aggregations: List should have at"),
    ("windowed", {"step": "1x"}, "feature view 'spend': step: '1x' is not a duration like 15m"),
    ("windowed", {"step": "0h"}, "feature view 'spend': step: '0h' must be a positive whole"),
    ("windowed", {"ttl": "soon"}, "feature view 'spend': ttl: 'soon' is not a duration"),
    (
        "windowed",
        {"start": "2024-05-01T00:30:00Z"},
        "feature view 'spend': start: 2024-05-01T00:30:00+00:00 is not aligned to the step",
    ),
    ("windowed", {"entities": []}, "feature view 'spend': entities: List should have at least"),
    ("windowed", {"entities": ["user", "user"]}, "feature view 'spend': entities: duplicate"),
    ("windowed", {"source": "Events"}, "feature view 'spend': source: String should match"),
    ("windowed", {"name": "spend__v2"}, "feature view 'spend__v2': name: 'spend__v2' contains"),
    ("sql", {"window": "90m"}, "feature view 'spread': window: 90m is not a multiple of the step"),
    ("sql", {"query": "SELECT 1"}, "feature view 'spread': query: must select from input_data"),
    (
        "sql",
        {"features": [{"name": "spread", "dtype": "float64"}] * 2},
        "feature view 'spread': features: duplicate feature name 'spread'",
    ),
    (
        "feature service",
        {"features": ["spend"]},
        "feature service 'model_v1': features.0: 'spend' is not a feature reference",
    ),
    (
        "feature service",
        {"features": ["spend:count_1h", "spend:count_1h"]},
        "feature service 'model_v1': features: duplicate reference 'spend:count_1h'",
    ),
    ("feature service", {"features": []}, "feature service 'model_v1': features: List should"),
]


@pytest.mark.parametrize(("shape", "changes", "line"), REFUSED)
def test_bad_json_is_refused_with_one_line_naming_the_field(shape, changes, line):
    with pytest.raises(DefinitionError) as refused:
        parse_definition(REST_KIND.get(shape, shape), with_changes(shape, **changes))
    message = str(refused.value)
    assert message.startswith(line)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("shape", "changes", "line"),
    [case for case in REFUSED if "kind" not in case[1]],
)
def test_bad_python_is_refused_with_the_same_line(shape, changes, line):
    data = with_changes(shape, **changes)
    data.pop("kind", None)
    with pytest.raises(ValidationError) as refused:
        CLASSES[shape](**data)
    _, field_and_reason = line.split(": ", 1)
    assert str(definition_error(refused.value, "in Python")).startswith(
        f"in Python: {field_and_reason}"
    )


# Cross-references: checked when a repo is put together -----------------------------------------


def _repo(*extra: Any, view: dict | None = None, source: dict | None = None) -> FeatureRepo:
    return FeatureRepo.of(
        Entity(**ENTITY),
        parse_definition("source", source or EVENTS),
        parse_definition("feature view", view or VIEW),
        *extra,
    )


@pytest.mark.parametrize(
    ("view", "line"),
    [
        ({**VIEW, "source": "clicks"}, "feature view 'spend': source: unknown source 'clicks'"),
        (
            {**VIEW, "entities": ["user", "shop"]},
            "feature view 'spend': entities.1: unknown entity 'shop'",
        ),
        (
            {**VIEW, "aggregations": [{"function": "max", "column": "price", "windows": ["1h"]}]},
            "feature view 'spend': aggregations.0.column: 'price' is not in the schema of "
            "source 'events'",
        ),
        (
            {**VIEW, "aggregations": [{"function": "sum", "column": "user_id", "windows": ["1h"]}]},
            "feature view 'spend': aggregations.0.column: sum needs a numeric column, "
            "'user_id' is string",
        ),
        (
            {**SQL_VIEW, "features": [{"name": "user_id", "dtype": "string"}]},
            "feature view 'spread': features: 'user_id' is also a join key",
        ),
    ],
)
def test_views_must_fit_their_source_and_entities(view, line):
    with pytest.raises(DefinitionError) as refused:
        _repo(view=view)
    assert str(refused.value) == line


def test_an_entity_key_missing_from_the_source_schema_is_refused():
    shop = Entity(name="shop", join_keys=["shop_id"])
    with pytest.raises(DefinitionError) as refused:
        FeatureRepo.of(
            shop,
            parse_definition("source", EVENTS),
            parse_definition("feature view", {**VIEW, "entities": ["shop"]}),
        )
    assert str(refused.value) == (
        "feature view 'spend': entities: join key 'shop_id' is not in the schema of source 'events'"
    )


@pytest.mark.parametrize(
    ("refs", "line"),
    [
        (
            ["clicks:count_1h"],
            "feature service 'model_v1': features.0: unknown feature view 'clicks'",
        ),
        (
            ["spend:amount_sum_1h", "spend:amount_sum_7d"],
            "feature service 'model_v1': features.1: view 'spend' has no feature 'amount_sum_7d'",
        ),
    ],
)
def test_services_must_name_existing_features(refs, line):
    with pytest.raises(DefinitionError) as refused:
        _repo(FeatureService(name="model_v1", features=refs))
    assert str(refused.value) == line


def test_one_name_defined_twice_differently_is_refused():
    with pytest.raises(DefinitionError) as refused:
        _repo(Entity(name="user", join_keys=["uid"]))
    assert str(refused.value) == "entity 'user': defined twice, differently"


def test_the_same_definition_twice_is_one_definition():
    repo = _repo(Entity(**ENTITY))
    assert list(repo.entities) == ["user"]


# Loading a feature repo from Python files ---------------------------------------------------------


def test_load_repo_collects_module_level_definitions(tmp_path: Path):
    (tmp_path / "a.py").write_text(
        "from jstore.model import Entity, EventSource, FieldSpec\n"
        "user = Entity(name='user', join_keys=['user_id'])\n"
        "events = EventSource(name='events', topic='events', timestamp_field='ts', schema=[\n"
        "    FieldSpec(name='user_id', dtype='string'), FieldSpec(name='ts', dtype='timestamp')])\n"
    )
    (tmp_path / "b.py").write_text(
        "from jstore.model import Aggregation, WindowedFeatureView\n"
        "from a import user\n"
        "clicks = WindowedFeatureView(name='clicks', entities=[user.name], source='events',\n"
        "    step='1h', aggregations=[Aggregation(function='count', windows=['1h'])])\n"
    )
    repo = load_repo(tmp_path)
    assert (list(repo.entities), list(repo.sources), list(repo.views)) == (
        ["user"],
        ["events"],
        ["clicks"],
    )


def test_each_repo_reads_its_own_helper_modules(tmp_path: Path):
    for team, key in (("first", "user_id"), ("second", "customer_id")):
        (tmp_path / team).mkdir()
        (tmp_path / team / "common.py").write_text(f"KEY = {key!r}\n")
        (tmp_path / team / "features.py").write_text(
            "from jstore.model import Entity\n"
            "from common import KEY\n"
            "user = Entity(name='user', join_keys=[KEY])\n"
        )
    assert load_repo(tmp_path / "first").entities["user"].join_keys == ["user_id"]
    assert load_repo(tmp_path / "second").entities["user"].join_keys == ["customer_id"]


def test_load_repo_names_the_file_and_the_model_of_a_bad_definition(tmp_path: Path):
    (tmp_path / "features.py").write_text(
        "from jstore.model import Aggregation\n"
        "bad = Aggregation(function='median', column='amount', windows=['1h'])\n"
    )
    with pytest.raises(DefinitionError) as refused:
        load_repo(tmp_path)
    assert str(refused.value).startswith(
        "features.py: Aggregation: function: Input should be 'count', 'sum'"
    )


def test_load_repo_refuses_a_folder_without_python_files(tmp_path: Path):
    with pytest.raises(DefinitionError, match="no Python feature definitions found"):
        load_repo(tmp_path)
    with pytest.raises(DefinitionError, match="no Python feature definitions found"):
        load_repo(tmp_path / "missing.py")
