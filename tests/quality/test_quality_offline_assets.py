"""Data Docs pages load their scripts, styles and fonts from the site itself, never a CDN."""

from __future__ import annotations

import re
from pathlib import Path

from jstore.lake import quality_dir
from jstore.quality import validate_staged
from jstore.quality.offline_assets import NODE_MODULES
from tests.quality.purchase_rows import purchase_row

ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""")


def test_every_page_of_the_site_loads_only_local_files(settings, registry, user_purchases, stage):
    report = validate_staged(settings, registry, user_purchases, stage([purchase_row("u1", 1)]))

    site = Path(quality_dir(settings))
    page = Path(report.report_path)
    pages = [page, site / "index.html", *(site / "expectations").rglob("*.html")]
    assert len(pages) == 3
    for html_page in pages:
        addresses = ASSET.findall(html_page.read_text())
        assert addresses, html_page
        assert [a for a in addresses if "://" in a] == [], html_page
        if NODE_MODULES.is_dir():
            missing = [a for a in addresses if not (html_page.parent / a).resolve().is_file()]
            assert missing == [], html_page
    text = page.read_text()
    assert "static/vendor/vega/build/vega.min.js" in text
    assert "integrity=" not in text
