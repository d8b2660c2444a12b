"""Debian's headless Chromium driven by selenium, for the browser tests and ``site_check.py``.

One :class:`Browser` wraps a WebDriver session and records, for every page it shows, what the page logged to the
console at level ``SEVERE`` and every URL the page requested (from Chromium's performance log, where each request
appears as a ``Network.requestWillBeSent`` event, before it can fail). Each page visited is saved as a full-page
PNG screenshot in the browser's ``screens`` folder. ``$ZSL_CHROMIUM`` and ``$ZSL_CHROMEDRIVER`` point at another
Chromium and its driver (default: Debian's ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = Path(os.environ.get("ZSL_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ZSL_CHROMEDRIVER", "/usr/bin/chromedriver"))
WINDOW = (1280, 1000)
LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})
_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container: the sandbox cannot start
    "--disable-dev-shm-usage",  # a container's /dev/shm is small
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (a one-line reason), or None when Chromium and its driver exist."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.is_file() and os.access(p, os.X_OK))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if not missing:
        return None
    return (
        f"headless Chromium not available (missing {', '.join(missing)}); on Debian: apt-get install "
        "--no-install-recommends chromium chromium-driver (.ci/run does this), and pip install -e '.[dev]'"
    )


def start_chromium() -> Any:
    """A new headless Chromium WebDriver with console and network logging on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in _FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(*WINDOW)
    driver.set_page_load_timeout(30)
    return driver


def outside_requests(urls: Iterable[str], hosts: Iterable[str] = ()) -> list[str]:
    """The URLs that leave the machine: any scheme but file/data/blob/about, unless its host is one of ``hosts``."""
    allowed = set(hosts)
    out = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in LOCAL_SCHEMES or parts.hostname in allowed:
            continue
        out.append(url)
    return out


@dataclass
class Browser:
    """A WebDriver session plus everything its pages logged since :meth:`reset` (console errors, requests)."""

    driver: Any
    screens: Path
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def reset(self, screens: Path) -> None:
        """Drop what earlier pages logged and save the next screenshots in ``screens``."""
        self.collect()
        self.screens = screens
        self.console_errors, self.requests, self.shots = [], [], []

    def collect(self) -> None:
        """Move the console's SEVERE messages and the requested URLs logged so far into this object."""
        for entry in self.driver.get_log("browser"):
            if entry.get("level") == "SEVERE":
                self.console_errors.append(entry.get("message", ""))
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            elif message.get("method") == "Network.webSocketCreated":
                self.requests.append(params["url"])

    def open(self, url: str, name: str) -> None:
        """Load ``url``, wait until the document has loaded, and save its screenshot as ``NAME.png``."""
        self.driver.get(url)
        self.wait_loaded()
        self.screenshot(name)

    def wait_loaded(self, timeout: float = 15) -> None:
        """Wait until the document and every image on it have finished loading (or failed to)."""
        script = "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete);"
        self.wait_for(lambda: self.driver.execute_script(script), timeout, "the page to load")

    def wait_for(self, condition: Any, timeout: float, what: str) -> Any:
        """Poll ``condition()`` until it is truthy; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what} at {self.driver.current_url}")
            time.sleep(0.05)

    def screenshot(self, name: str) -> Path:
        """The whole page (not only the window) as ``screens/NAME.png``."""
        import base64

        self.screens.mkdir(parents=True, exist_ok=True)
        path = self.screens / f"{name}.png"
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(shot["data"]))
        self.shots.append(path)
        return path

    def outside(self, hosts: Iterable[str] = ()) -> list[str]:
        """The requests so far that went anywhere but this machine's files (and ``hosts``)."""
        self.collect()
        return outside_requests(self.requests, hosts)

    def errors(self) -> list[str]:
        """The SEVERE console messages so far."""
        self.collect()
        return list(self.console_errors)
