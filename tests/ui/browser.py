"""Debian's headless Chromium driven by selenium (/usr/bin/chromium, /usr/bin/chromedriver, both
installed by scripts/setup.sh): no browser download, no network but loopback."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

NEXT_PAGE_SECONDS = 30
"""How long a click that leaves the page may take to show the next one (the page-load timeout)."""
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1400,1000",
)
"""Without the background-networking flags Chromium keeps trying Google's hosts, which this
machine's closed network refuses."""


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="jstore-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(NEXT_PAGE_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for_title(driver: webdriver.Chrome, title: str) -> None:
    """Wait until the page shown is titled `title` and loaded. A click that submits a form or
    follows a link may return while the browser still shows the page clicked on (chromedriver
    waits only for a navigation that has already started; under load the form's POST starts
    later), so a test reads the next page only after this."""
    _wait_for_loaded(driver, lambda: driver.title == title, f"titled {title!r}")


def wait_for_element(driver: webdriver.Chrome, css: str) -> WebElement:
    """The element `css` selects, once the page shown has one and is loaded (see
    `wait_for_title`)."""
    _wait_for_loaded(
        driver, lambda: bool(driver.find_elements(By.CSS_SELECTOR, css)), f"with {css!r}"
    )
    return driver.find_element(By.CSS_SELECTOR, css)


def _wait_for_loaded(driver: webdriver.Chrome, shown: Callable[[], bool], what: str) -> None:
    def ready(_: webdriver.Chrome) -> bool:
        return shown() and driver.execute_script("return document.readyState") == "complete"

    try:
        WebDriverWait(driver, NEXT_PAGE_SECONDS).until(ready)
    except TimeoutException:
        raise AssertionError(
            f"no loaded page {what} after {NEXT_PAGE_SECONDS} s: the browser shows "
            f"{driver.title!r} at {driver.current_url}"
        ) from None


def full_page_screenshot(driver: webdriver.Chrome, path: Path, width: int = 1400) -> None:
    """The page as a PNG: the window grown to the page's height, up to 1600 px (a longer page
    is cut: the docs keep each picture under 200 KB)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height, 600), 1600))
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    driver.set_window_size(width, 1000)
