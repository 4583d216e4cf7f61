"""The SVG charts of the quality statistics, and the charts beside each Data Docs page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jstore.quality import validate_staged
from jstore.quality.charts import coverage_chart, distribution_chart, drift_chart, drift_series
from tests.quality.purchase_rows import purchase_row

SVG = "{http://www.w3.org/2000/svg}"
STATS = {"min": 0.0, "p05": 1.0, "p25": 2.0, "p50": 5.0, "p75": 7.0, "p95": 9.0, "max": 10.0}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_a_distribution_is_two_box_plots_on_one_axis():
    shifted = {k: v + 10 for k, v in STATS.items()}
    chart = parse(distribution_chart("amount", shifted, STATS))

    texts = [t.text for t in chart.iter(f"{SVG}text")]
    assert texts == ["previous", "this run", "0", "10", "20"]
    assert chart.find(f"{SVG}title").text == "amount: distribution"
    assert len(chart.findall(f"{SVG}rect")) == 4


def test_a_feature_without_quantiles_has_no_distribution_chart():
    assert distribution_chart("tier", {"rows": 3, "null_share": 0.0, "distinct": 2}) is None
    assert distribution_chart("empty", {**STATS, "p50": None}) is None


def test_drift_points_above_the_threshold_are_red():
    chart = parse(drift_chart("amount", [("05-01", 0.0), ("05-02", 0.5)], threshold=0.2))

    colours = [c.get("fill") for c in chart.iter(f"{SVG}circle")]
    assert colours == ["#1f6feb", "#cf222e"]
    assert [c.find(f"{SVG}title").text for c in chart.iter(f"{SVG}circle")] == [
        "05-01: PSI 0",
        "05-02: PSI 0.5",
    ]
    assert drift_chart("amount", [], threshold=0.2) is None


def test_the_drift_series_skips_runs_without_a_score():
    runs = [{"label": "a", "drift": {}}, {"label": "b", "drift": {"x": 0.25, "y": 1.0}}]
    assert drift_series(runs, "x") == [("b", 0.25)]


def test_coverage_shows_each_interval_and_the_freshness():
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    chart = parse(
        coverage_chart(
            [(t0, t0 + hour), (t0 + 2 * hour, t0 + 3 * hour)], t0 + 4 * hour, t0 + 5 * hour
        )
    )

    titles = [
        r.find(f"{SVG}title").text
        for r in chart.iter(f"{SVG}rect")
        if r.find(f"{SVG}title") is not None
    ]
    assert titles == [
        "2024-05-01 00:00 to 2024-05-01 01:00",
        "2024-05-01 02:00 to 2024-05-01 03:00",
        "fresh until 2024-05-01 05:00",
    ]


def test_each_validation_page_shows_distributions_and_drift(
    settings, registry, user_purchases, stage
):
    def validate(scale, run_id):
        rows = [purchase_row(f"u{i:02}", 1, [scale * (i + 1)]) for i in range(20)]
        return validate_staged(settings, registry, user_purchases, stage(rows, run_id=run_id))

    validate(1.0, "compute-1")
    second = validate(3.0, "compute-2")

    page = Path(second.report_path).read_text()
    section = page[page.index('<section id="jstore-charts"') : page.index("</section>") + 10]
    charts = parse(f"<div>{section}</div>").findall(f".//{SVG}svg")
    titles = [c.find(f"{SVG}title").text for c in charts]
    assert titles[:2] == ["count_1h: distribution", "count_1h: drift over time"]
    assert len(titles) == 2 * len(user_purchases.features)
    assert page.count('<section id="jstore-charts"') == 1
