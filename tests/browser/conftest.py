"""Headless Chromium for the ``browser`` tests: one WebDriver session per test session, a fresh log per test.

The browser is Debian's ``chromium`` driven through its ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``). Without them the tests skip on a developer machine and fail in CI (``CI=true``).
Each test's screenshots land in ``tmp_path/screens``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from headless import Browser, missing_browser, start_chromium


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """The session's WebDriver (started once; quit at the end)."""
    problem = missing_browser()
    if problem:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{problem}; CI=true, so the browser tests must run")
        pytest.skip(problem)
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: Any, tmp_path: Path) -> Browser:
    """The shared browser with the logs of earlier tests dropped; screenshots go to ``tmp_path/screens``."""
    shared = Browser(chromium, tmp_path / "screens")
    shared.reset(tmp_path / "screens")
    return shared
