"""Data Docs pages that render with no internet: their CDN scripts, styles and fonts served locally.

Great Expectations' page templates load Bootstrap, jQuery, Popper, bootstrap-table,
bootstrap-datepicker, Font Awesome and Vega from public CDNs, and the navbar logo from S3. The
same files, at the same versions (or the nearest one the npm registry resolves with Bootstrap
4.3.1), are installed from npm by `scripts/setup.sh` (`npm ci` in `jstore/quality/web_assets/`).
After each checkpoint run, `make_offline` copies them into the site's own `static/vendor/` and
rewrites every CDN address in the site's pages to a relative path to that copy, so the site
works wherever it is served (the API's /quality/, a base-URL sub-path, or files on disk).

Without the npm packages installed the pages are still rewritten (no request leaves the
machine) and render unstyled; a warning names the setup step.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

NODE_MODULES = Path(__file__).parent / "web_assets" / "node_modules"
VENDOR = "static/vendor"
"""Where the copies live inside the Data Docs site (its `static/` folder is served)."""

CDN_FILES: dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free/css/all.min.css"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js/dist/umd/popper.min.js"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap/dist/js/bootstrap.min.js"
    ),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap/dist/css/bootstrap.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table/dist/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table/dist/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css",
}
"""Each CDN address in GX's page templates, and the npm file with the same content."""

EXTRA_FOLDERS = ("@fortawesome/fontawesome-free/webfonts",)
"""Loaded by the copied files themselves (Font Awesome's CSS points to `../webfonts/`)."""

S3_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/([\w.-]+)[^\"']*"
)
"""The navbar logo, fetched from S3 with the context's id appended: GX ships the same image."""

_ADDRESS = re.compile(r"""(src|href)=(["'])(https://[^"']+)\2""")
_SITE_STATIC = re.compile(r"""(src|href)=(["'])(?:\./|(?:\.\./)+)static/([^"']+)\2""")
"""A relative address into the site's `static/`: GX counts the folders of a validation page one
short for the favicon; each is made relative to the page's real depth."""
_INTEGRITY = re.compile(r"""\s+(integrity|crossorigin)=(["'])[^"']*\2""")


def make_offline(site: Path, pages: list[Path]) -> None:
    """Copy the vendor files into `site` (once) and rewrite the CDN addresses of `pages`."""
    install_vendor_files(site)
    for page in pages:
        if page.is_file():
            rewrite_page(page, site)


def install_vendor_files(site: Path) -> None:
    vendor = site / VENDOR
    if (vendor / ".complete").exists():
        return
    if not NODE_MODULES.is_dir():
        log.warning(
            "Data Docs assets not installed (%s): pages render unstyled; run scripts/setup.sh",
            NODE_MODULES,
        )
        return
    for relative in CDN_FILES.values():
        target = vendor / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(NODE_MODULES / relative, target)
    for folder in EXTRA_FOLDERS:
        shutil.copytree(NODE_MODULES / folder, vendor / folder, dirs_exist_ok=True)
    (vendor / ".complete").touch()


def rewrite_page(page: Path, site: Path) -> None:
    """Point every known CDN address of `page` to the site's copy and every `static/` address
    to the site's root; drop the SRI attributes (they pin the CDN's exact bytes). Unknown
    https:// scripts and styles are removed: a page must not wait on a host it cannot reach."""
    html = page.read_text()
    root = Path(os.path.relpath(site, page.parent)).as_posix()

    def local(match: re.Match[str]) -> str:
        attribute, quote, address = match.groups()
        if address in CDN_FILES:
            return f"{attribute}={quote}{root}/{VENDOR}/{CDN_FILES[address]}{quote}"
        logo = S3_LOGO.fullmatch(address)
        if logo:
            return f"{attribute}={quote}{root}/static/images/{logo.group(1)}{quote}"
        return match.group(0)

    def rooted(match: re.Match[str]) -> str:
        attribute, quote, inside = match.groups()
        return f"{attribute}={quote}{root}/static/{inside}{quote}"

    rewritten = _SITE_STATIC.sub(rooted, _ADDRESS.sub(local, html))
    rewritten = re.sub(
        r"<(script|link)\b[^>]*>", lambda m: _INTEGRITY.sub("", m.group(0)), rewritten
    )
    rewritten = _drop_remote_tags(rewritten)
    if rewritten != html:
        page.write_text(rewritten)


def _drop_remote_tags(html: str) -> str:
    html = re.sub(r"""<script\b[^>]*\bsrc=["']https?://[^"']*["'][^>]*>\s*</script>""", "", html)
    return re.sub(r"""<link\b[^>]*\bhref=["']https?://[^"']*["'][^>]*>""", "", html)
