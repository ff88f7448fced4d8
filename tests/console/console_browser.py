"""Debian's Chromium driven by Selenium, with no browser download: the system's ``chromium`` and
``chromium-driver`` (``apt-get install chromium chromium-driver``), found at fixed paths.

``why_no_browser()`` says why the browser tests cannot run here (None when they can);
``Browser`` wraps one headless session: open a console page, wait for things, collect the
browser's log (console errors, uncaught exceptions, failed loads) and write screenshots.
Also used by ``scripts/console-screenshot`` for the README's picture.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# flags that work on a headless CI machine without a GPU, a sandbox or the network
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "console-screenshots"
DESKTOP = (1280, 800)
PHONE = (390, 844)

T = TypeVar("T")


def why_no_browser() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            return f"{path} not found (apt-get install {package}; .ci/run installs it)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


class Browser:
    def __init__(self, base_url: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base_url = base_url
        self._profile = tempfile.mkdtemp(prefix="relaystack-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # a Service with a driver path: Selenium Manager (which could download a driver) never runs
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(60)
        self.driver.set_script_timeout(60)
        self.log: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    # -- navigation and waiting ---------------------------------------------------------------
    def open(self, page: str = "playground") -> None:
        self.driver.get(f"{self.base_url}/console#/{page}")
        self.wait(lambda: self.js(f"return !document.querySelector('#page-{page}').hidden"),
                  f"page {page} shown")

    def goto(self, page: str) -> None:
        """Switch page the way a user does: the navigation link."""
        self.click(f'[data-nav="{page}"]')
        self.wait(lambda: self.js(f"return !document.querySelector('#page-{page}').hidden"),
                  f"page {page} shown")

    def wait(self, condition: Callable[[], T], what: str, timeout: float = 60.0) -> T:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = condition()
            except Exception as exc:  # an element not there yet, a stale reference
                last_error = exc
                value = None
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error!r}); "
                             f"browser log: {self.take_log()}")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def click(self, selector: str) -> None:
        """Click an element after scrolling it to the middle of the view (the sticky header
        covers the top edge, where Selenium's own scrolling would leave it)."""
        element = self.css(selector)
        self.js("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def text(self, selector: str) -> str:
        return str(self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
                           selector))

    # -- artefacts ------------------------------------------------------------------------------
    def take_log(self) -> list[dict[str, Any]]:
        """Everything the browser logged since the last call (console messages, errors, failed loads)."""
        entries = list(self.driver.get_log("browser"))
        self.log.extend(entries)
        return entries

    def errors(self) -> list[dict[str, Any]]:
        """New log entries at warning level or above (console.error, uncaught exceptions, failed loads)."""
        return [e for e in self.take_log() if e.get("level") in ("SEVERE", "WARNING")]

    def size(self, width: int, height: int) -> None:
        self.driver.set_window_size(width, height)
        # the viewport, not the window, must be the asked size: correct for the browser's frame
        inner = self.js("return [window.innerWidth, window.innerHeight]")
        if inner != [width, height]:
            self.driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])

    def screenshot(self, name: str, folder: Path = SCREENSHOTS) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
