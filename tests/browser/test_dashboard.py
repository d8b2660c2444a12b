"""``zsl-bench dashboard`` in a real browser: optuna-dashboard serving a sweep's Optuna journal on 127.0.0.1."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest
from headless import Browser

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SWEEP = "browser-sweep"
_SERVING = re.compile(r"^dashboard: serving (?P<journal>.+) at (?P<url>http://(?P<host>[^:/]+):\d+/dashboard/)$")


def write_journal(results: Path, sweep: str, trials: int = 4) -> tuple[Path, int, float]:
    """A study named after the sweep in ``results/<sweep>/_ray/optuna.journal``, as the sweep writes it;
    returns the journal, the best trial's number and its value."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = results / sweep / "_ray" / "optuna.journal"
    journal.parent.mkdir(parents=True)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(study_name=sweep, storage=storage, direction="maximize", sampler=sampler)
    study.optimize(lambda t: t.suggest_float("optim.lr", 1e-4, 1e-1, log=True) * t.suggest_int("w", 4, 16), trials)
    return journal, study.best_trial.number, study.best_value


def first_line(stream: IO[str], timeout: float) -> str:
    """The first line the process prints (its stdout keeps being drained in the background)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    try:
        return lines.get(timeout=timeout).rstrip("\n")
    except queue.Empty:
        pytest.fail(f"zsl-bench dashboard printed nothing in {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> int | None:
    """SIGTERM, then the exit code within 15 s (None if it had to be killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)
        return None


def test_dashboard_serves_the_sweep_journal(browser: Browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    journal, best_number, best_value = write_journal(tmp_path / "results", SWEEP)
    log = tmp_path / "dashboard.err"
    args = ["dashboard", "--sweep", SWEEP, "--results", str(tmp_path / "results"), "--port", "0"]
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "zsl_bench.cli", *args], stdout=-1, stderr=err, text=True)
    try:
        line = first_line(proc.stdout, timeout=60)
        serving = _SERVING.match(line)
        assert serving, f"unexpected first line {line!r}; stderr:\n{log.read_text()}"
        assert Path(serving["journal"]).resolve() == journal.resolve()
        assert serving["host"] == "127.0.0.1"
        browser.open(serving["url"], "dashboard")

        def page() -> str:
            return browser.driver.find_element(By.TAG_NAME, "body").text

        browser.wait_for(lambda: SWEEP in page(), 30, f"the study {SWEEP!r} to be listed")
        browser.screenshot("dashboard")
        browser.driver.find_element(By.CSS_SELECTOR, "a[href*='/studies/']").click()
        best = f"Best Trial (number={best_number})"
        browser.wait_for(lambda: best in page() and repr(best_value) in page(), 30, f"{best!r} and its value")
        browser.screenshot("study")
        assert browser.errors() == []
        assert browser.outside(hosts=["127.0.0.1"]) == []
        assert any(url.startswith(serving["url"]) for url in browser.requests)
    finally:
        code = stop(proc)
    assert code is not None, "zsl-bench dashboard did not exit on SIGTERM within 15 s"
    assert "Traceback" not in log.read_text()
