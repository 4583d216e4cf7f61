"""Charts of the quality statistics as inline SVG: drawn server-side, no script, no network.

The same functions draw the pictures beside each validation's Data Docs page (`add_charts`)
and the web UI's pages: a feature's distribution against the previous run (two box plots
over min, p05, p25, p50, p75, p95, max on one axis), its drift over time (PSI per validation
run, with the flag threshold), and a view's published coverage on a time line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

WIDTH = 420
CURRENT = "#1f6feb"
PREVIOUS = "#8c959f"
FLAGGED = "#cf222e"
QUANTILE_KEYS = ("p05", "p25", "p50", "p75", "p95")


def _svg(height: int, title: str, body: str, width: int = WIDTH) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" '
        f'font-size="11"><title>{escape(title)}</title>{body}</svg>'
    )


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _has_quantiles(stats: dict[str, Any] | None) -> bool:
    return bool(stats) and all(
        isinstance(stats.get(k), int | float) for k in ("min", "max", *QUANTILE_KEYS)
    )


def distribution_chart(
    feature: str, current: dict[str, Any], previous: dict[str, Any] | None = None
) -> str | None:
    """Box plots of this run (blue) and the previous one (grey): whiskers min to max, the thin
    box p05 to p95, the thick box p25 to p75, a line at the median. None for a feature without
    numeric statistics."""
    runs = [("this run", current, CURRENT)]
    if _has_quantiles(previous):
        runs.insert(0, ("previous", previous, PREVIOUS))
    if not _has_quantiles(current):
        return None
    low = min(float(s["min"]) for _, s, _ in runs)
    high = max(float(s["max"]) for _, s, _ in runs)
    span = (high - low) or 1.0
    left, right = 70, WIDTH - 15

    def x(value: float) -> float:
        return left + (float(value) - low) / span * (right - left)

    parts = []
    for i, (label, stats, colour) in enumerate(runs):
        y = 22 + i * 30
        parts.append(f'<text x="4" y="{y + 4}" fill="#444">{escape(label)}</text>')
        parts.append(
            f'<line x1="{x(stats["min"]):.1f}" x2="{x(stats["max"]):.1f}" y1="{y}" y2="{y}" '
            f'stroke="{colour}"/>'
        )
        parts.append(
            f'<rect x="{x(stats["p05"]):.1f}" y="{y - 5}" height="10" fill="{colour}" '
            f'fill-opacity="0.25" width="{max(x(stats["p95"]) - x(stats["p05"]), 1):.1f}"/>'
        )
        parts.append(
            f'<rect x="{x(stats["p25"]):.1f}" y="{y - 9}" height="18" fill="{colour}" '
            f'fill-opacity="0.6" width="{max(x(stats["p75"]) - x(stats["p25"]), 1):.1f}"/>'
        )
        parts.append(
            f'<line x1="{x(stats["p50"]):.1f}" x2="{x(stats["p50"]):.1f}" y1="{y - 10}" '
            f'y2="{y + 10}" stroke="#000" stroke-width="2"/>'
        )
    axis_y = 22 + len(runs) * 30 - 8
    parts.append(f'<line x1="{left}" x2="{right}" y1="{axis_y}" y2="{axis_y}" stroke="#999"/>')
    ticks = [(low, "start"), ((low + high) / 2, "middle"), (high, "end")] if high > low else []
    for value, anchor in ticks or [(low, "start")]:
        parts.append(
            f'<text x="{x(value):.1f}" y="{axis_y + 13}" text-anchor="{anchor}" '
            f'fill="#444">{_number(value)}</text>'
        )
    return _svg(axis_y + 18, f"{feature}: distribution", "".join(parts))


def drift_chart(feature: str, points: Sequence[tuple[str, float]], threshold: float) -> str | None:
    """PSI per validation run, oldest first (label, score), with the threshold dashed; a point
    above it is red. None without any score."""
    if not points:
        return None
    height, top, bottom, left, right = 130, 12, 100, 46, WIDTH - 15
    high = max(max(score for _, score in points), threshold) * 1.15 or 1.0

    def y(score: float) -> float:
        return bottom - min(score, high) / high * (bottom - top)

    step = (right - left) / max(len(points) - 1, 1)
    xs = [left + i * step if len(points) > 1 else (left + right) / 2 for i in range(len(points))]
    parts = [
        f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#999"/>',
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#999"/>',
        f'<line x1="{left}" x2="{right}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
        f'stroke="{FLAGGED}" stroke-dasharray="4 3"/>',
        f'<text x="{right}" y="{y(threshold) - 3:.1f}" text-anchor="end" fill="{FLAGGED}">'
        f"threshold {_number(threshold)}</text>",
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" fill="#444">{_number(high)}</text>',
        f'<text x="{left - 4}" y="{bottom + 4}" text-anchor="end" fill="#444">0</text>',
        f'<text x="4" y="{(top + bottom) / 2:.0f}" fill="#444">PSI</text>',
    ]
    if len(points) > 1:
        line = " ".join(
            f"{px:.1f},{y(score):.1f}" for px, (_, score) in zip(xs, points, strict=True)
        )
        parts.append(f'<polyline points="{line}" fill="none" stroke="{CURRENT}"/>')
    for px, (label, score) in zip(xs, points, strict=True):
        colour = FLAGGED if score > threshold else CURRENT
        parts.append(
            f'<circle cx="{px:.1f}" cy="{y(score):.1f}" r="3.5" fill="{colour}">'
            f"<title>{escape(label)}: PSI {_number(score)}</title></circle>"
        )
    for i in sorted({0, len(points) - 1}):
        parts.append(
            f'<text x="{xs[i]:.1f}" y="{bottom + 14}" text-anchor="middle" fill="#444">'
            f"{escape(points[i][0])}</text>"
        )
    return _svg(height, f"{feature}: drift over time", "".join(parts))


def coverage_chart(
    intervals: Sequence[tuple[datetime, datetime]], now: datetime, fresh_until: datetime | None
) -> str:
    """The published intervals of a view version on a time line from the first start to the
    latest end (to `now` when it is near); `fresh_until` (the latest end plus the ttl) marks how
    long the newest rows stay fresh."""
    height, left, right, bar_y = 56, 10, WIDTH - 10, 14
    if not intervals:
        return _svg(height, "coverage", '<text x="10" y="24" fill="#444">nothing published</text>')
    first = intervals[0][0]
    last = max(intervals[-1][1], fresh_until or intervals[-1][1])
    if now > last and now - last < (last - first) / 2:
        last = now
    span = (last - first).total_seconds() or 1.0

    def x(ts: datetime) -> float:
        return left + (ts - first).total_seconds() / span * (right - left)

    parts = [f'<rect x="{left}" y="{bar_y}" width="{right - left}" height="16" fill="#eee"/>']
    for start, end in intervals:
        parts.append(
            f'<rect x="{x(start):.1f}" y="{bar_y}" width="{max(x(end) - x(start), 1):.1f}" '
            f'height="16" fill="{CURRENT}"><title>{start:%Y-%m-%d %H:%M} to '
            f"{end:%Y-%m-%d %H:%M}</title></rect>"
        )
    if fresh_until is not None and fresh_until > intervals[-1][1]:
        end_x = min(x(fresh_until), right)
        parts.append(
            f'<rect x="{x(intervals[-1][1]):.1f}" y="{bar_y + 4}" height="8" fill="#2da44e" '
            f'fill-opacity="0.6" width="{max(end_x - x(intervals[-1][1]), 1):.1f}">'
            f"<title>fresh until {fresh_until:%Y-%m-%d %H:%M}</title></rect>"
        )
    parts.append(
        f'<text x="{left}" y="{bar_y + 30}" fill="#444">{first:%Y-%m-%d %H:%M}</text>'
        f'<text x="{right}" y="{bar_y + 30}" text-anchor="end" fill="#444">'
        f"{last:%Y-%m-%d %H:%M}</text>"
    )
    return _svg(height, "coverage", "".join(parts))


def drift_series(runs: Sequence[dict[str, Any]], feature: str) -> list[tuple[str, float]]:
    """(label, PSI) of `feature` from validation summaries, oldest first; runs without a score
    for it (the first one, or an empty run) are left out."""
    points = []
    for run in runs:
        score = run.get("drift", {}).get(feature)
        if isinstance(score, int | float) and math.isfinite(score):
            label = str(run.get("label") or run.get("start") or run.get("run_id"))
            points.append((label, float(score)))
    return points


def report_section(
    statistics: dict[str, dict[str, Any]],
    previous: dict[str, dict[str, Any]] | None,
    history: Sequence[dict[str, Any]],
    threshold: float,
) -> str:
    """The charts of one validation as an HTML section: per numeric feature its distribution
    against the previous run and its drift over `history` (validation summaries, oldest first,
    this run last)."""
    rows = []
    for feature, stats in statistics.items():
        distribution = distribution_chart(feature, stats, (previous or {}).get(feature))
        if distribution is None:
            continue
        drift = drift_chart(feature, drift_series(history, feature), threshold)
        rows.append(
            f'<div class="jstore-chart-row"><h5>{escape(feature)}</h5>{distribution}'
            f"{drift or '<p><small>no drift score yet: the first validation</small></p>'}</div>"
        )
    return (
        '<section id="jstore-charts" class="jstore-charts"><h3>Distributions and drift</h3>'
        "<p><small>Blue: this run, grey: the previous successful validation; boxes p25-p75 "
        "and p05-p95, whiskers min-max, the line the median. Drift: PSI per validation run."
        f"</small></p>{''.join(rows)}</section>"
    )


def add_charts(page: Path, section: str) -> None:
    """Put `section` at the end of a Data Docs page's body, and a link to it above the page's
    content, below GX's navbar (replacing earlier ones)."""
    html = page.read_text()
    for marker, closing in (('<section id="jstore-charts"', "</section>"), (LINK_START, "</p>")):
        start = html.find(marker)
        if start >= 0:
            html = html[:start] + html[html.index(closing, start) + len(closing) :]
    style = (
        "<style>.jstore-charts{margin:1em 2em}.jstore-chart-row{display:flex;flex-wrap:wrap;"
        "gap:1em;align-items:flex-start;border-top:1px solid #ddd;padding:.5em 0}"
        ".jstore-chart-row h5{width:12em}</style>"
    )
    wrapped = f'<div class="container-fluid">{style}{section}</div>'
    at = html.rfind("</body>")
    html = html[:at] + wrapped + html[at:] if at >= 0 else html + wrapped
    link = (
        f'{LINK_START} style="margin:.5em 1em"><a href="#jstore-charts">'
        "Distributions and drift of the features</a></p>"
    )
    content = html.find('<div class="container-fluid')
    if content >= 0:
        html = html[:content] + link + html[content:]
    page.write_text(html)


LINK_START = '<p id="jstore-charts-link"'
