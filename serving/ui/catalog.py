"""What the UI pages show, read from the registry: views with their freshness, runs and quality,
lineage, search. Plain dicts and dataclasses for the templates; no HTML here but the charts
and the lineage picture (inline SVG)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from jstore.durations import format_duration
from jstore.model import ResolvedView
from jstore.quality import charts, latest_quality_summary
from jstore.registry import Registry, RunRecord

RUNS_SHOWN = 20
QUALITY_HISTORY = 30


@dataclass
class Freshness:
    """How old the newest published rows are, against the view's ttl."""

    latest_end: datetime | None
    ttl: timedelta | None
    now: datetime

    @property
    def age(self) -> timedelta | None:
        return self.now - self.latest_end if self.latest_end else None

    @property
    def state(self) -> str:
        """`fresh` (younger than the ttl), `stale`, `no ttl`, or `never published`."""
        if self.latest_end is None:
            return "never published"
        if self.ttl is None:
            return "no ttl"
        return "fresh" if self.now - self.latest_end <= self.ttl else "stale"

    @property
    def fresh_until(self) -> datetime | None:
        return self.latest_end + self.ttl if self.latest_end and self.ttl else None


@dataclass
class ViewRow:
    """One line of the views table."""

    view: ResolvedView
    freshness: Freshness
    last_run: RunRecord | None
    quality: dict[str, Any] | None
    services: list[str] = field(default_factory=list)


def duration_text(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def run_duration(run: RunRecord) -> str:
    return duration_text(run.finished_at - run.started_at if run.finished_at else None)


def service_views(feature_refs: list[str]) -> list[str]:
    """The view names a service's references (`view:feature`, `view@v2:feature`) point to."""
    names = [ref.split(":", 1)[0].split("@", 1)[0] for ref in feature_refs]
    return list(dict.fromkeys(names))


def freshness(registry: Registry, view: ResolvedView, now: datetime) -> Freshness:
    coverage = registry.coverage(view.name, view.version)
    return Freshness(coverage[-1][1] if coverage else None, view.definition.ttl, now)


def view_rows(registry: Registry, now: datetime | None = None) -> list[ViewRow]:
    now = now or datetime.now(UTC)
    users: dict[str, list[str]] = {}
    for service in registry.list_services():
        for name in service_views(service.features):
            users.setdefault(name, []).append(service.name)
    rows = []
    for view in registry.list_views():
        runs = registry.list_runs(subject=view.name, limit=1)
        quality = latest_quality_summary(registry, view.name, 1)
        rows.append(
            ViewRow(
                view=view,
                freshness=freshness(registry, view, now),
                last_run=runs[0] if runs else None,
                quality=quality[0] if quality else None,
                services=users.get(view.name, []),
            )
        )
    return rows


@dataclass
class FeatureCharts:
    name: str
    dtype: str
    latest: dict[str, Any]
    distribution: str | None
    drift: str | None


@dataclass
class ViewPage:
    view: ResolvedView
    versions: list[int]
    definition_json: str
    coverage: list[tuple[datetime, datetime]]
    coverage_chart: str
    freshness: Freshness
    runs: list[RunRecord]
    quality: list[dict[str, Any]]
    features: list[FeatureCharts]
    services: list[str]
    drift_threshold: float


def view_page(
    registry: Registry, name: str, version: int | None, drift_threshold: float
) -> ViewPage:
    view = registry.get_view(name, version)
    now = datetime.now(UTC)
    coverage = registry.coverage(view.name, view.version)
    fresh = freshness(registry, view, now)
    quality = [
        q
        for q in latest_quality_summary(registry, view.name, QUALITY_HISTORY)
        if q["version"] == view.version
    ]
    return ViewPage(
        view=view,
        versions=registry.view_versions(view.name),
        definition_json=json.dumps(
            view.definition.model_dump(mode="json", by_alias=True), indent=2
        ),
        coverage=coverage,
        coverage_chart=charts.coverage_chart(coverage, now, fresh.fresh_until),
        freshness=fresh,
        runs=registry.list_runs(subject=view.name, limit=RUNS_SHOWN),
        quality=quality,
        features=feature_charts(view, quality, drift_threshold),
        services=[
            s.name for s in registry.list_services() if view.name in service_views(s.features)
        ],
        drift_threshold=drift_threshold,
    )


def feature_charts(
    view: ResolvedView, quality: list[dict[str, Any]], threshold: float
) -> list[FeatureCharts]:
    """Per feature: the latest validation's statistics against the previous successful one,
    and the drift of each validation, oldest first."""
    done = [q for q in quality if q["status"] != "running" and q["statistics"]]
    latest = done[0] if done else None
    previous = next((q for q in done[1:] if q["status"] == "success"), None)
    history = [{"label": _label(q), "drift": q["drift"]} for q in reversed(done)]
    result = []
    for spec in view.features:
        stats = latest["statistics"].get(spec.name, {}) if latest else {}
        before = previous["statistics"].get(spec.name) if previous else None
        result.append(
            FeatureCharts(
                name=spec.name,
                dtype=spec.dtype,
                latest=stats,
                distribution=charts.distribution_chart(spec.name, stats, before) if stats else None,
                drift=charts.drift_chart(
                    spec.name, charts.drift_series(history, spec.name), threshold
                ),
            )
        )
    return result


def _label(summary: dict[str, Any]) -> str:
    start = summary.get("start")
    return datetime.fromisoformat(start).strftime("%m-%d %H:%M") if start else summary["run_id"]


@dataclass
class Lineage:
    sources: list[str]
    views: list[tuple[str, str]]
    """(view, its source)"""
    services: list[tuple[str, list[str]]]
    """(service, the views it reads)"""


def lineage(registry: Registry) -> Lineage:
    views = registry.list_views()
    return Lineage(
        sources=[s.name for s in registry.list_sources()],
        views=[(v.name, v.source.name) for v in views],
        services=[(s.name, service_views(s.features)) for s in registry.list_services()],
    )


@dataclass
class Hit:
    kind: str
    name: str
    link: str
    """Relative to /ui/."""
    text: str


def search(registry: Registry, query: str) -> list[Hit]:
    """Entities, sources, views, features and services whose name, description, owner or tags
    contain `query` (case-insensitive)."""
    needle = query.strip().lower()
    if not needle:
        return []

    def matches(*texts: Any) -> bool:
        return any(needle in str(t).lower() for t in texts if t)

    hits = []
    for e in registry.list_entities():
        if matches(e.name, e.description, *e.join_keys):
            hits.append(Hit("entity", e.name, f"entities#{e.name}", e.description))
    for s in registry.list_sources():
        if matches(s.name, s.description, s.owner, *s.tags, *s.tags.values()):
            hits.append(Hit("source", s.name, f"sources#{s.name}", s.description))
    for v in registry.list_views():
        d = v.definition
        if matches(v.name, d.description, d.owner, *d.tags, *d.tags.values()):
            hits.append(Hit("view", v.name, f"views/{v.name}", d.description))
        for f in v.features:
            if matches(f.name):
                where = f"views/{v.name}#feature-{f.name}"
                hits.append(Hit("feature", f"{v.name}:{f.name}", where, f.dtype))
    for svc in registry.list_services():
        if matches(svc.name, svc.description, svc.owner, *svc.features):
            hits.append(Hit("service", svc.name, f"services#{svc.name}", svc.description))
    return hits


def ttl_text(view: ResolvedView) -> str:
    ttl = view.definition.ttl
    return format_duration(ttl) if ttl else "-"


def lineage_picture(lineage: Lineage, root: str) -> str:
    """Sources, views and services in three columns, each view linked to its source and each
    service to its views; every box links to its page."""
    columns = [
        [(s, f"{root}sources#{s}") for s in lineage.sources],
        [(v, f"{root}views/{v}") for v, _ in lineage.views],
        [(s, f"{root}services#{s}") for s, _ in lineage.services],
    ]
    box_w, box_h, gap, col_x = 170, 28, 14, (10, 290, 570)
    height = max(len(c) for c in columns) * (box_h + gap) + 40
    where: list[dict[str, float]] = [{}, {}, {}]
    boxes = []
    for i, (title, nodes) in enumerate(
        zip(("sources", "feature views", "services"), columns, strict=True)
    ):
        boxes.append(f'<text x="{col_x[i]}" y="14" fill="#57606a">{title}</text>')
        for j, (name, link) in enumerate(nodes):
            y = 26 + j * (box_h + gap)
            where[i][name] = y + box_h / 2
            boxes.append(
                f'<a href="{escape(link)}"><rect x="{col_x[i]}" y="{y}" width="{box_w}" '
                f'height="{box_h}" rx="4" fill="#f6f8fa" stroke="#1f6feb"/><text '
                f'x="{col_x[i] + 8}" y="{y + 18}" fill="#0969da">{escape(name)}</text></a>'
            )
    edges = []

    def edge(a: int, a_name: str, b: int, b_name: str) -> None:
        if a_name in where[a] and b_name in where[b]:
            x1, x2 = col_x[a] + box_w, col_x[b]
            edges.append(
                f'<path d="M{x1},{where[a][a_name]:.0f} C{x1 + 50},{where[a][a_name]:.0f} '
                f'{x2 - 50},{where[b][b_name]:.0f} {x2},{where[b][b_name]:.0f}" fill="none" '
                'stroke="#8c959f"/>'
            )

    for view, source in lineage.views:
        edge(0, source, 1, view)
    for service, views in lineage.services:
        for view in views:
            edge(1, view, 2, service)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="760" height="{height}" '
        f'viewBox="0 0 760 {height}" font-family="sans-serif" font-size="12" role="img">'
        f"<title>lineage</title>{''.join(edges)}{''.join(boxes)}</svg>"
    )
