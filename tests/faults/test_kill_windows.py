"""SIGKILL in every write window of a two-epoch training run, each followed by a rerun that continues it
(``kill_windows.py`` does the killing in fresh processes): nothing is lost, duplicated or left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.faults]

RUNNER = Path(__file__).with_name("kill_windows.py")


def test_a_kill_in_any_write_window_is_survived(synth_res101: Path, tmp_path: Path) -> None:
    command = [sys.executable, str(RUNNER), str(synth_res101), str(tmp_path / "runs"), "--epochs", "2"]
    proc = subprocess.run([*command, "--model", "ale"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    # config, then per epoch: two metric records, the summary and checkpoints; then done — at least 10 renames
    assert figures["kills"] >= 20, figures
    assert figures["failures"] == {} and figures["kills_survived"] == figures["kills"], figures
