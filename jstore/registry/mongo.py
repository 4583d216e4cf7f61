"""The registry in MongoDB: definitions with versions, runs, watermarks and published coverage.

Invariants:
- `feature_views` holds one document per (name, version); the highest version is current and
  carries `current: true`. Older versions stay readable by `name@vN`.
- Concurrent applies of the same repo converge: a version is inserted under a unique index on
  (name, version), and the loser of a race re-reads and finds its own fingerprint current.
- Every write is acknowledged by the journal (w=1, j=True).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

from jstore.closable import Closable
from jstore.config import Settings
from jstore.durations import as_utc
from jstore.model import (
    Entity,
    EventSource,
    FeatureRef,
    FeatureService,
    FeatureSpec,
    ResolvedView,
    SqlFeatureView,
    TableSource,
    WindowedFeatureView,
)
from jstore.registry.plan import Change, Plan, fingerprint
from jstore.registry.runs import RunRecord
from jstore.registry.snapshot import Snapshot
from jstore.repo import KINDS, DefinitionError, FeatureRepo, parse_definition

COLLECTIONS = {"entity": "entities", "source": "sources", "feature service": "feature_services"}


class NotFound(LookupError):
    """A name (or name@version) that the registry does not hold."""


class Registry(Closable):
    def __init__(self, settings: Settings, client: MongoClient | None = None):
        self.settings = settings
        self.client = client or MongoClient(
            settings.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000
        )
        self.db: Database = self.client.get_database(
            settings.mongo_db, write_concern=WriteConcern(w=1, j=True)
        )
        self._indexes_ensured = False

    def close(self) -> None:
        self.client.close()

    def ensure_indexes(self) -> None:
        if self._indexes_ensured:
            return
        for coll in COLLECTIONS.values():
            self.db[coll].create_index([("name", ASCENDING)], unique=True)
        self.db.feature_views.create_index(
            [("name", ASCENDING), ("version", ASCENDING)], unique=True
        )
        self.db.runs.create_index([("run_id", ASCENDING)], unique=True)
        self.db.runs.create_index(
            [("kind", ASCENDING), ("subject", ASCENDING), ("started_at", DESCENDING)]
        )
        self.db.watermarks.create_index([("key", ASCENDING)], unique=True)
        self.db.coverage.create_index(
            [("view", ASCENDING), ("version", ASCENDING), ("start", ASCENDING), ("end", ASCENDING)],
            unique=True,
        )
        self._indexes_ensured = True

    # Definitions ---------------------------------------------------------------------------

    def stored_repo(self) -> FeatureRepo:
        """The current definitions, as a repo (for checking a new definition against them)."""
        repo = FeatureRepo()
        for kind, coll in COLLECTIONS.items():
            for doc in self.db[coll].find():
                repo.add(parse_definition(kind, doc["spec"]))
        for doc in self._current_view_docs():
            repo.add(parse_definition("feature view", doc["spec"]))
        return repo

    def plan(self, repo: FeatureRepo) -> Plan:
        self.ensure_indexes()
        changes: list[Change] = []
        for kind, items in (("entity", repo.entities), ("source", repo.sources)):
            changes += [self._plain_change(kind, d) for d in items.values()]
        for name in repo.views:
            changes.append(self._view_change(repo, name))
        changes += [self._plain_change("feature service", s) for s in repo.services.values()]
        return Plan(changes)

    def apply(self, repo: FeatureRepo) -> Plan:
        """Register every definition of `repo`; idempotent. Returns what was changed."""
        repo.check()
        self.ensure_indexes()
        applied: list[Change] = []
        for kind, items in (("entity", repo.entities), ("source", repo.sources)):
            applied += [self._put_plain(kind, d) for d in items.values()]
        applied += [self._put_view(repo, name) for name in repo.views]
        applied += [self._put_plain("feature service", s) for s in repo.services.values()]
        self.write_snapshot()
        return Plan(applied)

    def register(self, definition: BaseModel) -> Change:
        """Apply one definition (as REST's register does), checked against what is stored."""
        repo = self.stored_repo()
        repo.add_or_replace(definition)
        repo.check()
        self.ensure_indexes()
        if isinstance(definition, WindowedFeatureView | SqlFeatureView):
            change = self._put_view(repo, definition.name)
        else:
            change = self._put_plain(KINDS[type(definition)], definition)
        self.write_snapshot()
        return change

    def _plain_change(self, kind: str, definition: BaseModel) -> Change:
        doc = self.db[COLLECTIONS[kind]].find_one({"name": definition.name})  # type: ignore[attr-defined]
        spec = definition.model_dump(mode="json", by_alias=True)
        action = "create" if doc is None else ("unchanged" if doc["spec"] == spec else "update")
        return Change(kind, definition.name, action)  # type: ignore[attr-defined]

    def _put_plain(self, kind: str, definition: BaseModel) -> Change:
        change = self._plain_change(kind, definition)
        if change.action != "unchanged":
            now = datetime.now(UTC)
            self.db[COLLECTIONS[kind]].update_one(
                {"name": change.name},
                {
                    "$set": {
                        "spec": definition.model_dump(mode="json", by_alias=True),
                        "updated_at": now,
                    },
                    "$setOnInsert": {"created_at": now},
                },
                upsert=True,
            )
        return change

    def _view_change(self, repo: FeatureRepo, name: str) -> Change:
        current = self._current_view_doc(name)
        if current is None:
            return Change("feature view", name, "create", 1)
        resolved = repo.resolve(name, current["version"])
        if fingerprint(resolved) != current["fingerprint"]:
            return Change("feature view", name, "new version", current["version"] + 1)
        spec = resolved.definition.model_dump(mode="json", by_alias=True)
        action = "unchanged" if spec == current["spec"] else "update"
        return Change("feature view", name, action, current["version"])

    def _put_view(self, repo: FeatureRepo, name: str) -> Change:
        while True:
            change = self._view_change(repo, name)
            if change.action == "unchanged":
                return change
            doc = self._view_doc(repo.resolve(name, change.version or 1))
            if change.action == "update":
                self.db.feature_views.update_one(
                    {"name": name, "version": change.version},
                    {
                        "$set": {
                            key: doc[key]
                            for key in ("spec", "resolved", "owner", "tags", "updated_at")
                        }
                    },
                )
                return change
            try:
                self.db.feature_views.insert_one(doc)
            except DuplicateKeyError:
                continue  # a concurrent apply registered this version first: compare again
            self.db.feature_views.update_many(
                {"name": name, "version": {"$lt": change.version}}, {"$set": {"current": False}}
            )
            return change

    @staticmethod
    def _view_doc(resolved: ResolvedView) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "name": resolved.name,
            "version": resolved.version,
            "current": True,
            "fingerprint": fingerprint(resolved),
            "spec": resolved.definition.model_dump(mode="json", by_alias=True),
            "resolved": resolved.model_dump(mode="json", by_alias=True),
            "entities": resolved.definition.entities,
            "owner": resolved.definition.owner,
            "tags": resolved.definition.tags,
            "created_at": now,
            "updated_at": now,
        }

    def _current_view_doc(self, name: str) -> dict | None:
        return self.db.feature_views.find_one({"name": name}, sort=[("version", DESCENDING)])

    def _current_view_docs(self) -> Iterator[dict]:
        latest = self.db.feature_views.aggregate(
            [
                {"$sort": {"name": 1, "version": -1}},
                {"$group": {"_id": "$name", "doc": {"$first": "$$ROOT"}}},
                {"$sort": {"_id": 1}},
            ]
        )
        return (row["doc"] for row in latest)

    # Lookups ---------------------------------------------------------------------------------

    def _get_plain(self, kind: str, name: str) -> Any:
        doc = self.db[COLLECTIONS[kind]].find_one({"name": name})
        if doc is None:
            raise NotFound(f"unknown {kind} {name!r}")
        return parse_definition(kind, doc["spec"])

    def get_entity(self, name: str) -> Entity:
        return self._get_plain("entity", name)

    def list_entities(self) -> list[Entity]:
        return [parse_definition("entity", d["spec"]) for d in self.db.entities.find().sort("name")]

    def get_source(self, name: str) -> EventSource | TableSource:
        return self._get_plain("source", name)

    def list_sources(self) -> list[EventSource | TableSource]:
        return [parse_definition("source", d["spec"]) for d in self.db.sources.find().sort("name")]

    def get_service(self, name: str) -> FeatureService:
        return self._get_plain("feature service", name)

    def list_services(self) -> list[FeatureService]:
        return [
            parse_definition("feature service", d["spec"])
            for d in self.db.feature_services.find().sort("name")
        ]

    def get_view(self, name: str, version: int | None = None) -> ResolvedView:
        """The current version of a view, or `version`; also accepts `name@vN`."""
        if "@" in name and version is None:
            name, _, pin = name.partition("@")
            if not (pin.startswith("v") and pin[1:].isdigit()):
                raise NotFound(f"{name}@{pin}: a version is written @v<N>")
            version = int(pin[1:])
        if version is None:
            doc = self._current_view_doc(name)
        else:
            doc = self.db.feature_views.find_one({"name": name, "version": version})
        if doc is None:
            raise NotFound(f"unknown feature view {name!r}" + (f" v{version}" if version else ""))
        return ResolvedView.model_validate(doc["resolved"])

    def view_versions(self, name: str) -> list[int]:
        return [d["version"] for d in self.db.feature_views.find({"name": name}).sort("version")]

    def list_views(
        self, tag: str | None = None, entity: str | None = None, owner: str | None = None
    ) -> list[ResolvedView]:
        """Current versions; `tag` is `key` or `key=value`."""
        views = []
        for doc in self._current_view_docs():
            if entity and entity not in doc["entities"]:
                continue
            if owner and owner != doc["owner"]:
                continue
            if tag:
                key, eq, value = tag.partition("=")
                if key not in doc["tags"] or (eq and doc["tags"][key] != value):
                    continue
            views.append(ResolvedView.model_validate(doc["resolved"]))
        return views

    def resolve_refs(
        self, refs: Iterable[str] = (), service: str | None = None
    ) -> list[tuple[ResolvedView, FeatureSpec]]:
        """Feature references (or a service's) as (view version, feature), in order."""
        texts = list(self.get_service(service).features) if service else list(refs)
        if not texts:
            raise DefinitionError("features: give at least one feature reference or a service")
        views: dict[tuple[str, int | None], ResolvedView] = {}
        resolved = []
        for i, text in enumerate(texts):
            try:
                ref = FeatureRef.parse(text)
            except ValueError as e:
                raise DefinitionError(f"features.{i}: {e}") from None
            key = (ref.view, ref.version)
            if key not in views:
                views[key] = self.get_view(ref.view, ref.version)
            try:
                resolved.append((views[key], views[key].feature(ref.feature)))
            except KeyError as e:
                raise NotFound(f"features.{i}: {e.args[0]}") from None
        return resolved

    # Runs, watermarks, coverage ----------------------------------------------------------------

    def record_run(self, run: RunRecord) -> str:
        self.ensure_indexes()
        self.db.runs.insert_one(run.model_dump())
        return run.run_id

    def finish_run(self, run_id: str, status: str, **fields: Any) -> RunRecord:
        fields = {k: v for k, v in fields.items() if v is not None}
        doc = self.db.runs.find_one_and_update(
            {"run_id": run_id},
            {"$set": {"status": status, "finished_at": datetime.now(UTC), **fields}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise NotFound(f"unknown run {run_id!r}")
        return RunRecord.model_validate(doc)

    @contextmanager
    def run(self, record: RunRecord) -> Iterator[RunRecord]:
        """Record `record` as running, and finish it when the block ends: every run's bookkeeping.

        The block fills in `rows`, `details` and, for a run that did its work but failed its
        check (a failed suite), `status = "failed"` and `error`. An exception finishes the run
        as failed with the error `<ExceptionType>: <message>` and propagates. A run id recorded
        before (a retried Airflow task, a repeated `--run-id`) is recorded afresh.
        """
        self.ensure_indexes()
        self.db.runs.replace_one({"run_id": record.run_id}, record.model_dump(), upsert=True)
        try:
            yield record
        except BaseException as e:
            self.finish_run(
                record.run_id, "failed", error=f"{type(e).__name__}: {e}", details=record.details
            )
            raise
        self.finish_run(
            record.run_id,
            "success" if record.status == "running" else record.status,
            rows=record.rows,
            details=record.details,
            error=record.error,
        )

    def passed_validation(self, view: str, version: int, staged_run_id: str) -> RunRecord | None:
        """The latest successful `validate` run of a staged run of `view` v`version`, if any."""
        doc = self.db.runs.find_one(
            {
                "kind": "validate",
                "status": "success",
                "subject": view,
                "version": version,
                "details.staged_run_id": staged_run_id,
            },
            sort=[("started_at", DESCENDING)],
        )
        return None if doc is None else RunRecord.model_validate(doc)

    def get_run(self, run_id: str) -> RunRecord:
        doc = self.db.runs.find_one({"run_id": run_id})
        if doc is None:
            raise NotFound(f"unknown run {run_id!r}")
        return RunRecord.model_validate(doc)

    def list_runs(
        self,
        kind: str | None = None,
        subject: str | None = None,
        status: str | None = None,
        limit: int = 50,
        version: int | None = None,
    ) -> list[RunRecord]:
        query = {k: v for k, v in (("kind", kind), ("subject", subject), ("status", status)) if v}
        if version is not None:
            query["version"] = version
        docs = self.db.runs.find(query).sort("started_at", DESCENDING).limit(limit)
        return [RunRecord.model_validate(d) for d in docs]

    def get_watermark(self, key: str) -> Any:
        doc = self.db.watermarks.find_one({"key": key})
        return None if doc is None else doc["value"]

    def set_watermark(self, key: str, value: Any) -> None:
        self.ensure_indexes()
        self.db.watermarks.update_one(
            {"key": key}, {"$set": {"value": value, "updated_at": datetime.now(UTC)}}, upsert=True
        )

    def add_coverage(self, view: str, version: int, start: datetime, end: datetime) -> None:
        """Record that [start, end) of a view version is published."""
        self.ensure_indexes()
        self.db.coverage.update_one(
            {"view": view, "version": version, "start": as_utc(start), "end": as_utc(end)},
            {"$setOnInsert": {"published_at": datetime.now(UTC)}},
            upsert=True,
        )

    def coverage(self, view: str, version: int) -> list[tuple[datetime, datetime]]:
        """The published intervals of a view version, merged and sorted."""
        merged: list[tuple[datetime, datetime]] = []
        for doc in self.db.coverage.find({"view": view, "version": version}).sort("start"):
            start, end = as_utc(doc["start"]), as_utc(doc["end"])
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    # Snapshot ----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(
            project=self.settings.project,
            entities={e.name: e for e in self.list_entities()},
            sources={s.name: s for s in self.list_sources()},
            views={v.name: v for v in self.list_views()},
            services={s.name: s for s in self.list_services()},
        )

    def write_snapshot(self) -> None:
        self.snapshot().write(self.settings.registry_snapshot)
