"""The registry in MongoDB: plan, apply, versions, lookups, runs, watermarks, coverage, snapshot.

Against the real MongoDB-compatible server; each test has its own database (`settings`).
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from jstore.config import Settings
from jstore.model import Aggregation, Entity, EventSource, FeatureService, FieldSpec
from jstore.model import WindowedFeatureView as View
from jstore.registry import NotFound, Registry, RunRecord, Snapshot, new_run_id
from jstore.repo import DefinitionError, FeatureRepo

T0 = datetime(2024, 5, 1, tzinfo=UTC)
H = timedelta(hours=1)

USER = Entity(name="user", join_keys=["user_id"])
SHOP = Entity(name="shop", join_keys=["shop_id"])
EVENTS = EventSource(
    name="events",
    topic="events",
    timestamp_field="ts",
    schema=[
        FieldSpec(name="user_id", dtype="string"),
        FieldSpec(name="shop_id", dtype="string"),
        FieldSpec(name="amount", dtype="float64"),
        FieldSpec(name="ts", dtype="timestamp"),
    ],
)
SPEND = View(
    name="spend",
    entities=["user"],
    source="events",
    step="1h",
    aggregations=[Aggregation(function="sum", column="amount", windows=["1h", "1d"])],
    owner="fraud",
    tags={"team": "fraud", "tier": "gold"},
    description="What a user spends.",
)
VISITS = View(
    name="visits",
    entities=["shop"],
    source="events",
    step="1d",
    aggregations=[Aggregation(function="count", windows=["1d", "7d"])],
    owner="shops",
    tags={"team": "shops"},
)
MODEL = FeatureService(name="model_v1", features=["spend:amount_sum_1d", "visits:count_7d"])


def repo_of(spend: View = SPEND, *extra: Any, service: FeatureService = MODEL) -> FeatureRepo:
    return FeatureRepo.of(USER, SHOP, EVENTS, spend, VISITS, service, *extra)


def changes(plan) -> list[tuple[str, str, str, int | None]]:
    return [(c.kind, c.name, c.action, c.version) for c in plan.changes]


def edit(view: View, **fields: Any) -> View:
    return View.model_validate({**view.model_dump(), **fields})


# plan and apply --------------------------------------------------------------------------------


def test_plan_of_a_new_repo_creates_everything_and_writes_nothing(registry: Registry):
    plan = registry.plan(repo_of())
    assert changes(plan) == [
        ("entity", "user", "create", None),
        ("entity", "shop", "create", None),
        ("source", "events", "create", None),
        ("feature view", "spend", "create", 1),
        ("feature view", "visits", "create", 1),
        ("feature service", "model_v1", "create", None),
    ]
    assert plan.has_changes
    assert registry.list_views() == []
    assert registry.list_entities() == []


def test_apply_registers_and_a_second_apply_changes_nothing(registry: Registry):
    first = registry.apply(repo_of())
    assert changes(first) == [
        ("entity", "user", "create", None),
        ("entity", "shop", "create", None),
        ("source", "events", "create", None),
        ("feature view", "spend", "create", 1),
        ("feature view", "visits", "create", 1),
        ("feature service", "model_v1", "create", None),
    ]
    again = registry.apply(repo_of())
    assert {c.action for c in again.changes} == {"unchanged"}
    assert not again.has_changes
    assert not registry.plan(repo_of()).has_changes
    assert str(registry.plan(FeatureRepo())) == "nothing to apply"
    assert [(v.name, v.version) for v in registry.list_views()] == [("spend", 1), ("visits", 1)]
    assert registry.get_entity("user") == USER
    assert registry.get_source("events") == EVENTS
    assert registry.get_service("model_v1") == MODEL


def test_plan_prints_one_line_per_change(registry: Registry):
    registry.apply(repo_of())
    plan = registry.plan(repo_of(edit(SPEND, step="30m"), Entity(name="shop2", join_keys=["x"])))
    assert str(plan).splitlines() == [
        "unchanged    entity user",
        "unchanged    entity shop",
        "create       entity shop2",
        "unchanged    source events",
        "new version  feature view spend v2",
        "unchanged    feature view visits v1",
        "unchanged    feature service model_v1",
    ]


@pytest.mark.parametrize(
    "metadata",
    [
        {"description": "Spend, in euros."},
        {"tags": {"team": "risk"}},
        {"owner": "risk"},
        {"ttl": "3h"},
        {"start": T0},
    ],
)
def test_metadata_changes_update_the_current_version_in_place(registry: Registry, metadata):
    registry.apply(repo_of())
    changed = edit(SPEND, **metadata)
    assert ("feature view", "spend", "update", 1) in changes(registry.plan(repo_of(changed)))
    assert ("feature view", "spend", "update", 1) in changes(registry.apply(repo_of(changed)))
    assert registry.view_versions("spend") == [1]
    assert registry.get_view("spend").definition == changed
    assert not registry.apply(repo_of(changed)).has_changes


def test_list_filters_follow_metadata_updates(registry: Registry):
    registry.apply(repo_of())
    registry.apply(repo_of(edit(SPEND, owner="risk", tags={"team": "risk"})))
    assert [v.name for v in registry.list_views(owner="risk")] == ["spend"]
    assert [v.name for v in registry.list_views(owner="fraud")] == []
    assert [v.name for v in registry.list_views(tag="team=risk")] == ["spend"]
    assert [v.name for v in registry.list_views(tag="tier")] == []


@pytest.mark.parametrize(
    "breaking",
    [
        {"step": "30m"},
        {"aggregations": [Aggregation(function="sum", column="amount", windows=["1h", "7d"])]},
        {"aggregations": [Aggregation(function="max", column="amount", windows=["1h", "1d"])]},
        {"entities": ["shop"]},
        {"entities": ["user", "shop"]},
    ],
)
def test_breaking_changes_make_version_two_and_keep_version_one(registry: Registry, breaking):
    registry.apply(repo_of())
    changed = edit(SPEND, **breaking)
    extra = (FeatureService(name="model_v1", features=["visits:count_7d"]),)
    new_repo = FeatureRepo.of(USER, SHOP, EVENTS, changed, VISITS, *extra)
    assert ("feature view", "spend", "new version", 2) in changes(registry.plan(new_repo))
    assert ("feature view", "spend", "new version", 2) in changes(registry.apply(new_repo))
    assert registry.view_versions("spend") == [1, 2]
    assert registry.get_view("spend").version == 2
    assert registry.get_view("spend").definition == changed
    old = registry.get_view("spend", 1)
    assert (old.version, old.definition, old.table) == (1, SPEND, "spend__v1")
    assert registry.get_view("spend@v1") == old
    assert registry.get_view("spend@v2").table == "spend__v2"
    current = {
        d["version"]: d["current"] for d in registry.db.feature_views.find({"name": "spend"})
    }
    assert current == {1: False, 2: True}
    assert not registry.apply(new_repo).has_changes


def test_a_new_source_for_a_view_is_a_new_version(registry: Registry):
    registry.apply(repo_of())
    clicks = EVENTS.model_copy(update={"name": "clicks", "topic": "clicks"})
    assert changes(registry.apply(repo_of(edit(SPEND, source="clicks"), clicks)))[3:5] == [
        ("source", "clicks", "create", None),
        ("feature view", "spend", "new version", 2),
    ]


def test_an_entity_key_change_makes_new_versions_of_its_views(registry: Registry):
    registry.apply(repo_of())
    wider_shop = Entity(name="shop", join_keys=["shop_id", "user_id"])
    applied = registry.apply(FeatureRepo.of(USER, wider_shop, EVENTS, SPEND, VISITS, MODEL))
    assert changes(applied)[1] == ("entity", "shop", "update", None)
    assert ("feature view", "spend", "unchanged", 1) in changes(applied)
    assert ("feature view", "visits", "new version", 2) in changes(applied)
    assert registry.get_view("visits").join_keys == ["shop_id", "user_id"]
    assert registry.get_view("visits@v1").join_keys == ["shop_id"]


def test_a_source_metadata_or_topic_change_keeps_the_view_versions(registry: Registry):
    registry.apply(repo_of())
    renamed = EVENTS.model_copy(update={"topic": "events_v2", "description": "All events."})
    applied = registry.apply(FeatureRepo.of(USER, SHOP, renamed, SPEND, VISITS, MODEL))
    assert changes(applied)[2:5] == [
        ("source", "events", "update", None),
        ("feature view", "spend", "unchanged", 1),
        ("feature view", "visits", "unchanged", 1),
    ]
    assert registry.get_source("events").topic == "events_v2"


def test_apply_never_deletes_what_a_repo_no_longer_defines(registry: Registry):
    registry.apply(repo_of())
    applied = registry.apply(FeatureRepo.of(USER, EVENTS, SPEND))
    assert not applied.has_changes
    assert [v.name for v in registry.list_views()] == ["spend", "visits"]
    assert registry.get_service("model_v1") == MODEL


def test_a_source_dtype_change_of_a_feature_column_is_a_new_version(registry: Registry):
    registry.apply(repo_of())
    schema = [
        f if f.name != "amount" else FieldSpec(name="amount", dtype="int64") for f in EVENTS.schema_
    ]
    int_events = EVENTS.model_copy(update={"schema_": schema})
    applied = registry.apply(FeatureRepo.of(USER, SHOP, int_events, SPEND, VISITS, MODEL))
    assert ("feature view", "spend", "new version", 2) in changes(applied)
    assert ("feature view", "visits", "unchanged", 1) in changes(applied)
    assert registry.get_view("spend").feature("amount_sum_1d").dtype == "int64"


def test_register_checks_one_definition_against_what_is_stored(registry: Registry):
    registry.apply(repo_of())
    month = Aggregation(function="count", windows=["1d", "7d", "30d"])
    change = registry.register(edit(VISITS, aggregations=[month]))
    assert (change.action, change.version) == ("new version", 2)
    assert registry.register(Entity(name="country", join_keys=["country"])).action == "create"
    with pytest.raises(DefinitionError) as refused:
        registry.register(edit(SPEND, name="clicks_spend", source="clicks"))
    assert str(refused.value) == "feature view 'clicks_spend': source: unknown source 'clicks'"
    with pytest.raises(DefinitionError) as refused:
        registry.register(
            edit(VISITS, aggregations=[Aggregation(function="count", windows=["1d"])])
        )
    assert str(refused.value) == (
        "feature service 'model_v1': features.1: view 'visits' has no feature 'count_7d'"
    )
    assert registry.view_versions("visits") == [1, 2]


def test_writes_wait_for_the_journal_and_names_are_unique(registry: Registry):
    registry.apply(repo_of())
    assert registry.db.write_concern.document == {"w": 1, "j": True}
    unique = {
        coll: sorted(
            tuple(index["key"]) for index in registry.db[coll].list_indexes() if index.get("unique")
        )
        for coll in ("entities", "sources", "feature_views", "feature_services")
    }
    assert unique == {
        "entities": [("name",)],
        "sources": [("name",)],
        "feature_views": [("name", "version")],
        "feature_services": [("name",)],
    }
    with pytest.raises(DuplicateKeyError):
        registry.db.feature_views.insert_one({"name": "spend", "version": 1})


# Lookups -----------------------------------------------------------------------------------------


def test_list_views_filters_by_tag_entity_and_owner(registry: Registry):
    registry.apply(repo_of())

    def names(**filters: str) -> list[str]:
        return [v.name for v in registry.list_views(**filters)]

    assert names() == ["spend", "visits"]
    assert names(tag="team") == ["spend", "visits"]
    assert names(tag="team=shops") == ["visits"]
    assert names(tag="tier") == ["spend"]
    assert names(tag="tier=silver") == []
    assert names(entity="user") == ["spend"]
    assert names(owner="shops") == ["visits"]
    assert names(owner="fraud", entity="shop") == []


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("nope", None, "unknown feature view 'nope'"),
        ("spend", 2, "unknown feature view 'spend' v2"),
        ("spend@v3", None, "unknown feature view 'spend' v3"),
        ("spend@3", None, "spend@3: a version is written @v<N>"),
    ],
)
def test_view_lookup_errors(registry: Registry, name, version, message):
    registry.apply(repo_of())
    with pytest.raises(NotFound) as missing:
        registry.get_view(name, version)
    assert str(missing.value) == message


@pytest.mark.parametrize(
    ("getter", "message"),
    [
        ("get_entity", "unknown entity 'nope'"),
        ("get_source", "unknown source 'nope'"),
        ("get_service", "unknown feature service 'nope'"),
    ],
)
def test_other_lookup_errors(registry: Registry, getter, message):
    with pytest.raises(NotFound) as missing:
        getattr(registry, getter)("nope")
    assert str(missing.value) == message


def test_resolve_refs_of_a_service_and_of_pinned_references(registry: Registry):
    registry.apply(repo_of())
    registry.apply(
        repo_of(
            edit(SPEND, aggregations=[Aggregation(function="count", windows=["1h"])]),
            service=FeatureService(name="model_v1", features=["visits:count_7d"]),
        )
    )
    resolved = registry.resolve_refs(service="model_v1")
    assert [(v.table, f.name) for v, f in resolved] == [("visits__v1", "count_7d")]
    resolved = registry.resolve_refs(
        ["spend:count_1h", "spend@v1:amount_sum_1d", "visits:count_1d"]
    )
    assert [(v.table, f.name) for v, f in resolved] == [
        ("spend__v2", "count_1h"),
        ("spend__v1", "amount_sum_1d"),
        ("visits__v1", "count_1d"),
    ]


@pytest.mark.parametrize(
    ("refs", "error", "message"),
    [
        ([], DefinitionError, "features: give at least one feature reference or a service"),
        (["spend"], DefinitionError, "features.0: 'spend' is not a feature reference like"),
        (["spend:count_9h"], NotFound, "features.0: feature view 'spend' v1 has no feature"),
        (["visits:count_1d", "nope:x"], NotFound, "unknown feature view 'nope'"),
        (["spend@v7:amount_sum_1h"], NotFound, "unknown feature view 'spend' v7"),
    ],
)
def test_resolve_refs_errors(registry: Registry, refs, error, message):
    registry.apply(repo_of())
    with pytest.raises(error) as refused:
        registry.resolve_refs(refs)
    assert str(refused.value).startswith(message)


def test_an_unknown_service_is_not_found(registry: Registry):
    with pytest.raises(NotFound, match="unknown feature service 'fraud'"):
        registry.resolve_refs(service="fraud")


# The snapshot file --------------------------------------------------------------------------------


def test_apply_writes_a_snapshot_that_reads_without_a_database(registry: Registry):
    registry.apply(repo_of())
    registry.apply(repo_of(edit(SPEND, step="30m")))
    snapshot = Snapshot.load(registry.settings.registry_snapshot)
    assert snapshot == registry.snapshot()
    assert snapshot.project == registry.settings.project
    assert sorted(snapshot.views) == ["spend", "visits"]
    assert snapshot.views["spend"].table == "spend__v2"
    assert snapshot.entities["user"] == USER
    assert snapshot.sources["events"] == EVENTS
    assert snapshot.services["model_v1"] == MODEL
    assert not list(registry.settings.registry_snapshot.parent.glob(".registry_snapshot.json.*"))
    assert registry.settings.registry_snapshot.stat().st_mode & 0o777 == 0o644


# Runs, watermarks, coverage -----------------------------------------------------------------------


def test_runs_are_recorded_finished_and_listed_newest_first(registry: Registry):
    first = RunRecord(
        run_id=new_run_id("compute"),
        kind="compute",
        subject="spend",
        version=1,
        start=T0,
        end=T0 + H,
        started_at=T0,
    )
    second = RunRecord(
        run_id=new_run_id("publish"), kind="publish", subject="spend", started_at=T0 + H
    )
    assert registry.record_run(first) == first.run_id
    registry.record_run(second)
    done = registry.finish_run(first.run_id, "success", rows=12, details={"tiles": 3}, error=None)
    assert (done.status, done.rows, done.details, done.error) == ("success", 12, {"tiles": 3}, None)
    assert done.finished_at is not None
    assert (done.start, done.end) == (T0, T0 + H)
    assert registry.get_run(first.run_id) == done
    assert [r.run_id for r in registry.list_runs(subject="spend")] == [second.run_id, first.run_id]
    assert [r.run_id for r in registry.list_runs(kind="compute")] == [first.run_id]
    assert [r.run_id for r in registry.list_runs(status="running")] == [second.run_id]
    assert [r.run_id for r in registry.list_runs(limit=1)] == [second.run_id]


def test_unknown_runs_are_not_found(registry: Registry):
    with pytest.raises(NotFound, match="unknown run 'compute-x'"):
        registry.get_run("compute-x")
    with pytest.raises(NotFound, match="unknown run 'compute-x'"):
        registry.finish_run("compute-x", "failed")


def test_run_ids_are_unique_and_sortable():
    ids = [new_run_id("land") for _ in range(100)]
    assert len(set(ids)) == 100
    assert all(i.startswith("land-") for i in ids)


def test_watermarks_start_empty_and_keep_the_last_value(registry: Registry):
    assert registry.get_watermark("materialize:spend__v1") is None
    registry.set_watermark("materialize:spend__v1", T0)
    registry.set_watermark("materialize:spend__v1", T0 + H)
    registry.set_watermark("land:events", {"0": 41, "1": 7})
    assert registry.get_watermark("materialize:spend__v1") == T0 + H
    assert registry.get_watermark("land:events") == {"0": 41, "1": 7}
    assert registry.db.watermarks.count_documents({}) == 2


def at(hours: int) -> datetime:
    return T0 + hours * H


@pytest.mark.parametrize(
    ("published", "merged"),
    [
        ([], []),
        ([(0, 2)], [(0, 2)]),
        ([(2, 4), (0, 2)], [(0, 4)]),
        ([(0, 2), (5, 6), (2, 3)], [(0, 3), (5, 6)]),
        ([(0, 5), (1, 2)], [(0, 5)]),
        ([(0, 3), (2, 6), (6, 7)], [(0, 7)]),
        ([(0, 2), (0, 2), (0, 2)], [(0, 2)]),
        ([(3, 4), (0, 1)], [(0, 1), (3, 4)]),
    ],
)
def test_coverage_merges_published_intervals(registry: Registry, published, merged):
    for start, end in published:
        registry.add_coverage("spend", 1, at(start), at(end))
    registry.add_coverage("spend", 2, at(100), at(101))
    assert registry.coverage("spend", 1) == [(at(s), at(e)) for s, e in merged]


def test_coverage_takes_any_timezone_and_answers_in_utc(registry: Registry):
    from datetime import timezone

    cest = timezone(timedelta(hours=2))
    registry.add_coverage("spend", 1, datetime(2024, 5, 1, 2, tzinfo=cest), at(1))
    registry.add_coverage("spend", 1, datetime(2024, 5, 1, 1), at(2))  # naive is UTC
    [(start, end)] = registry.coverage("spend", 1)
    assert (start, end) == (at(0), at(2))
    assert start.tzinfo == UTC


# Concurrent applies: several processes at once, then exactly one version per change -------------

PROCESSES = 4


def _apply_in_process(settings: Settings, breaking: bool, barrier, results) -> None:
    registry = Registry(settings)
    spend = edit(SPEND, step="30m") if breaking else SPEND
    repo = repo_of(spend)
    barrier.wait(timeout=60)
    try:
        results.put(changes(registry.apply(repo)))
    except Exception as e:  # reported to the test, which fails with it
        results.put(f"{type(e).__name__}: {e}")
    finally:
        registry.close()


def _apply_concurrently(settings: Settings, breaking: bool) -> list:
    # fork: the workers start at once (no re-import); each opens its own MongoDB client.
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    workers = [
        context.Process(target=_apply_in_process, args=(settings, breaking, barrier, results))
        for _ in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    assert all(isinstance(o, list) for o in outcomes), outcomes
    return outcomes


def test_concurrent_applies_of_the_same_repo_make_one_version_per_change(registry: Registry):
    settings = registry.settings
    created = _apply_concurrently(settings, breaking=False)
    for view in ("spend", "visits"):
        actions = sorted(c[2] for outcome in created for c in outcome if c[1] == view)
        assert actions == ["create"] + ["unchanged"] * (PROCESSES - 1)
    assert registry.view_versions("spend") == [1]
    assert registry.view_versions("visits") == [1]
    assert registry.db.entities.count_documents({}) == 2
    assert registry.db.sources.count_documents({}) == 1
    assert registry.db.feature_services.count_documents({}) == 1

    bumped = _apply_concurrently(settings, breaking=True)
    spend_actions = sorted(c[2:] for outcome in bumped for c in outcome if c[1] == "spend")
    assert spend_actions == [("new version", 2)] + [("unchanged", 2)] * (PROCESSES - 1)
    assert registry.view_versions("spend") == [1, 2]
    assert registry.view_versions("visits") == [1]
    current = sorted(
        (d["name"], d["version"]) for d in registry.db.feature_views.find({"current": True})
    )
    assert current == [("spend", 2), ("visits", 1)]
