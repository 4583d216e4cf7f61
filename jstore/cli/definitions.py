"""`jstore plan | apply | list | describe`: the feature definitions in the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jstore.cli.common import open_registry, user_errors
from jstore.durations import format_duration
from jstore.repo import load_repo

RepoArg = Annotated[Path, typer.Argument(help="Feature repo folder (or one .py file).")]


def plan(repo: RepoArg = Path(".")) -> None:
    """Show what `apply` would change: new objects, metadata updates and new view versions."""
    with user_errors():
        definitions = load_repo(repo)
    with open_registry() as registry:
        typer.echo(str(registry.plan(definitions)))


def apply(repo: RepoArg = Path(".")) -> None:
    """Register the repo's definitions (idempotent) and print each view's version."""
    with user_errors():
        definitions = load_repo(repo)
    with open_registry() as registry:
        typer.echo(str(registry.apply(definitions)))


def list_(
    kind: Annotated[str, typer.Argument(help="views, entities, sources or services")] = "views",
    tag: Annotated[str | None, typer.Option(help="key or key=value")] = None,
    entity: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[str | None, typer.Option()] = None,
) -> None:
    """List registered definitions; views can be filtered by tag, entity and owner."""
    with open_registry() as registry:
        if kind == "views":
            for v in registry.list_views(tag=tag, entity=entity, owner=owner):
                typer.echo(
                    f"{v.name:24} v{v.version:<3} step {format_duration(v.definition.step):4} "
                    f"{len(v.features):3} features  keys {','.join(v.join_keys)}  "
                    f"owner {v.definition.owner or '-'}"
                )
        elif kind == "entities":
            for e in registry.list_entities():
                typer.echo(f"{e.name:24} keys {','.join(e.join_keys)}")
        elif kind == "sources":
            for s in registry.list_sources():
                where = s.topic if s.kind == "event" else (s.table or "query")
                typer.echo(f"{s.name:24} {s.kind:6} {where}")
        elif kind == "services":
            for svc in registry.list_services():
                typer.echo(f"{svc.name:24} {len(svc.features)} features")
        else:
            raise typer.BadParameter(
                "choose views, entities, sources or services", param_hint="KIND"
            )


def describe(
    name: Annotated[str, typer.Argument(help="view, view@vN, or a service/entity/source")],
) -> None:
    """Print a feature view version (or a service, entity or source) as JSON."""
    with open_registry() as registry:
        bare = name.partition("@")[0]
        if bare in {v.name for v in registry.list_views()} or "@" in name:
            view = registry.get_view(name)
            doc = view.model_dump(mode="json", by_alias=True)
            doc["versions"] = registry.view_versions(view.name)
            doc["coverage"] = [
                [s.isoformat(), e.isoformat()]
                for s, e in registry.coverage(view.name, view.version)
            ]
        else:
            for getter in (registry.get_service, registry.get_entity, registry.get_source):
                try:
                    doc = getter(name).model_dump(mode="json", by_alias=True)
                    break
                except LookupError:
                    continue
            else:
                registry.get_view(name)  # raises the not-found error naming the view
        typer.echo(json.dumps(doc, indent=2))


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(apply)
    app.command("list")(list_)
    app.command()(describe)
