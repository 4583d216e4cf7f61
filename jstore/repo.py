"""A feature repo: one project's definitions, loaded from Python modules and checked as a whole."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, TypeAdapter, ValidationError

from jstore.errors import InputError
from jstore.model import (
    Entity,
    EventSource,
    FeatureRef,
    FeatureService,
    FeatureView,
    ResolvedView,
    Source,
    SqlFeatureView,
    TableSource,
    WindowedFeatureView,
    resolve,
)

KINDS: dict[type, str] = {
    Entity: "entity",
    EventSource: "source",
    TableSource: "source",
    WindowedFeatureView: "feature view",
    SqlFeatureView: "feature view",
    FeatureService: "feature service",
}


class DefinitionError(InputError):
    """An invalid definition; the message names the object and the field."""


UNION_TAG_ERRORS = frozenset({"union_tag_not_found", "union_tag_invalid"})


def definition_error(e: ValidationError, what: str, tagged: bool = False) -> DefinitionError:
    """One line from pydantic's error: `<what>: <field path>: <message>`.

    `tagged`: `e` comes from a union discriminated by `kind`, whose tag (`windowed`, `table`, …)
    pydantic puts first in every error location; it is not a field (though `table` can be one).
    """
    err = e.errors()[0]
    parts = err["loc"][1:] if tagged else err["loc"]
    if err["type"] in UNION_TAG_ERRORS:
        parts = ("kind",)
    loc = ".".join(str(p) for p in parts)
    msg = err["msg"].removeprefix("Value error, ")
    where = f"{loc}: " if loc and not msg.startswith(f"{loc}:") else ""
    return DefinitionError(f"{what}: {where}{msg}")


def parse_definition(kind: str, data: dict) -> BaseModel:
    """A definition from its JSON shape, as sent over REST or stored in the registry."""
    adapters = {
        "entity": TypeAdapter(Entity),
        "source": TypeAdapter(Source),
        "feature view": TypeAdapter(FeatureView),
        "feature service": TypeAdapter(FeatureService),
    }
    name = data.get("name", "?") if isinstance(data, dict) else "?"
    try:
        return adapters[kind].validate_python(data)
    except ValidationError as e:
        tagged = kind in ("source", "feature view")
        raise definition_error(e, f"{kind} {name!r}", tagged) from None


@dataclass
class FeatureRepo:
    entities: dict[str, Entity] = field(default_factory=dict)
    sources: dict[str, EventSource | TableSource] = field(default_factory=dict)
    views: dict[str, WindowedFeatureView | SqlFeatureView] = field(default_factory=dict)
    services: dict[str, FeatureService] = field(default_factory=dict)

    @classmethod
    def of(cls, *definitions: BaseModel) -> FeatureRepo:
        repo = cls()
        for d in definitions:
            repo.add(d)
        repo.check()
        return repo

    def add(self, definition: BaseModel) -> None:
        kind = KINDS.get(type(definition))
        if kind is None:
            raise DefinitionError(f"{definition!r} is not a JStore definition")
        target = self._collection(kind)
        name = definition.name  # type: ignore[attr-defined]
        if name in target and target[name] != definition:
            raise DefinitionError(f"{kind} {name!r}: defined twice, differently")
        target[name] = definition

    def add_or_replace(self, definition: BaseModel) -> None:
        kind = KINDS.get(type(definition))
        if kind is None:
            raise DefinitionError(f"{definition!r} is not a JStore definition")
        self._collection(kind)[definition.name] = definition  # type: ignore[attr-defined]

    def _collection(self, kind: str) -> dict:
        return {
            "entity": self.entities,
            "source": self.sources,
            "feature view": self.views,
            "feature service": self.services,
        }[kind]

    def check(self) -> None:
        """Cross-references: every view's source and entities exist and fit; services resolve."""
        resolved = {name: self.resolve(name, 1) for name in self.views}
        for service in self.services.values():
            for i, text in enumerate(service.features):
                ref = FeatureRef.parse(text)
                view = resolved.get(ref.view)
                if view is None:
                    raise DefinitionError(
                        f"feature service {service.name!r}: features.{i}: "
                        f"unknown feature view {ref.view!r}"
                    )
                if ref.feature not in {f.name for f in view.features}:
                    raise DefinitionError(
                        f"feature service {service.name!r}: features.{i}: "
                        f"view {ref.view!r} has no feature {ref.feature!r}"
                    )

    def resolve(self, view_name: str, version: int) -> ResolvedView:
        view = self.views[view_name]
        try:
            return resolve(view, version, self.entities, self.sources)
        except ValueError as e:
            raise DefinitionError(f"feature view {view.name!r}: {e}") from None


def load_repo(path: str | Path) -> FeatureRepo:
    """Every definition at module level of the Python files in `path` (a folder or one file)."""
    path = Path(path)
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    if not files or not all(f.is_file() and f.suffix == ".py" for f in files):
        raise DefinitionError(f"{path}: no Python feature definitions found")
    repo = FeatureRepo()
    sys.path.insert(0, str(files[0].parent))
    try:
        for file in files:
            module_name = f"jstore_repo_{file.parent.name}_{file.stem}"
            spec = importlib.util.spec_from_file_location(module_name, file)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except ValidationError as e:
                raise definition_error(e, f"{file.name}: {e.title}") from None
            except DefinitionError:
                raise
            except Exception as e:  # the repo is user code: its error is bad input, in one line
                raise DefinitionError(f"{file.name}: {type(e).__name__}: {e}") from None
            for value in vars(module).values():
                if type(value) in KINDS:
                    repo.add(value)
    finally:
        sys.path.remove(str(files[0].parent))
        _forget_modules_in(files[0].parent)
    repo.check()
    return repo


def _forget_modules_in(folder: Path) -> None:
    """Drop the repo's helper modules (`from common import …`) from the import cache, so that
    loading another repo with a module of the same name reads that repo's file."""
    folder = folder.resolve()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().parent == folder:
            del sys.modules[name]
