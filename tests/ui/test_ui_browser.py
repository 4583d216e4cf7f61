"""The web UI in a real browser: Debian's headless Chromium against the API served by uvicorn.

With JSTORE_SCREENSHOTS=<folder> (`make screenshots`), a PNG of each page is written there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.serving.live_api import live_api
from tests.ui import browser
from tests.ui.conftest import READ_KEY, publish_demo

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not browser.available(), reason="chromium: run scripts/setup.sh"),
]
SCREENSHOTS = os.environ.get("JSTORE_SCREENSHOTS")


def snap(driver, name: str, full: bool = True) -> None:
    if SCREENSHOTS:
        path = Path(SCREENSHOTS) / f"ui-{name}.png"
        if full:
            browser.full_page_screenshot(driver, path)
        else:
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(str(path))


def test_a_user_logs_in_and_finds_the_demo_views_a_chart_and_a_run(
    api_settings, registry, example_repo, app
):
    publish_demo(api_settings, registry, example_repo, (1.0, 1.1, 3.0))

    with live_api(app) as base, browser.chromium() as driver:
        driver.get(f"{base}/ui/")
        assert driver.title == "Log in · JStore"
        snap(driver, "login")
        driver.find_element(By.ID, "key").send_keys(READ_KEY)
        driver.find_element(By.CSS_SELECTOR, "form button").click()

        browser.wait_for_title(driver, "Overview · JStore")
        views = [
            a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.views td:first-child a")
        ]
        assert views == ["merchant_sales", "user_big_spends", "user_categories", "user_purchases"]
        snap(driver, "overview")

        driver.find_element(By.LINK_TEXT, "user_purchases").click()
        browser.wait_for_title(driver, "user_purchases · JStore")
        runs = driver.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")
        first = [td.text for td in runs[0].find_elements(By.TAG_NAME, "td")[1:5]]
        assert first == ["publish", "success", "2024-05-01 12:00 → 2024-05-01 18:00", "20"]
        assert len(runs) == 6
        chart = driver.find_element(By.CSS_SELECTOR, "#feature-amount_sum_1h svg.chart")
        assert chart.size["width"] > 300 and chart.size["height"] > 50
        drift_points = driver.find_elements(By.CSS_SELECTOR, "#feature-amount_sum_1h svg circle")
        assert len(drift_points) == 2
        snap(driver, "view")

        driver.find_element(By.CSS_SELECTOR, "a.data-docs").click()
        browser.wait_for_element(driver, "#jstore-charts-link a").click()
        charts = driver.find_element(By.ID, "jstore-charts")
        assert charts.is_displayed()
        loaded = driver.execute_script(
            "return [typeof window.jQuery, typeof window.vegaEmbed, "
            "getComputedStyle(document.body).fontFamily.length > 0]"
        )
        assert loaded == ["function", "function", True]
        snap(driver, "data-docs", full=False)
        if SCREENSHOTS:
            driver.execute_script("document.querySelector('nav.sticky-top').style.display='none'")
            charts.screenshot(str(Path(SCREENSHOTS) / "ui-data-docs-charts.png"))

        for page in ("views", "entities", "sources", "services", "lineage"):
            driver.get(f"{base}/ui/{page}")
            assert driver.find_element(By.TAG_NAME, "h1").text
            snap(driver, page)
        driver.get(f"{base}/ui/search?q=amount_sum")
        hits = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "main table tbody a")]
        assert hits == [
            *(f"merchant_sales:amount_sum_{w}" for w in ("1d", "7d")),
            *(f"user_purchases:amount_sum_{w}" for w in ("1h", "1d", "7d", "30d")),
            "fraud_v1",
        ]
        snap(driver, "search")
