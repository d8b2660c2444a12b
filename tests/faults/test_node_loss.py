"""A worker node of a real three-node Ray cluster on loopback killed mid-sweep (``sweep_kills.py``): every requested
trial completes exactly once. The driver-kill scenario of the same module runs in tests/search/test_resume.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_kills import node_loss

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]


def test_a_lost_worker_node_is_survived(synth_root, tmp_path, cli):
    figures = node_loss(synth_root, tmp_path, cli)
    assert figures["node_states"] == {"127.0.0.2": "ALIVE", "127.0.0.3": "DEAD"}, figures
    assert figures["trials_lost"] == 0 and figures["trials_duplicated"] == 0, figures
