"""Kill a running sweep for real (SIGKILL to the driver's whole process group), then ``--resume`` it; later starts
of the same sweep (a plain start is refused, ``--resume`` of a finished sweep reruns nothing)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))  # the kill scenarios

from sweep_kills import TRIALS, driver_kills, run_dirs

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]


def test_killed_sweep_resumes_without_losing_or_rerunning_trials(synth_root, tmp_path, cli):
    """The driver is killed three times (``sweep_kills.driver_kills``); then the sweep's later starts behave."""
    figures = driver_kills(synth_root, tmp_path, cli, seed=0)
    assert figures == {"kills": 3, "kills_survived": 3, "trials_lost": 0, "trials_duplicated": 0}
    space_file, results = tmp_path / "killme.yaml", tmp_path / "results"
    sweep_dir = results / "killme"
    before = {d.name: (d / "done").stat().st_mtime_ns for d in run_dirs(sweep_dir)}

    code, _, err = cli("sweep", "--space", str(space_file), "--results", str(results))
    assert code == 2 and "--resume" in err  # a second plain start does not mix into the existing sweep

    # `make quickstart` passes --resume every time: on a finished sweep it reruns nothing ...
    code, out, err = cli("sweep", "--space", str(space_file), "--results", str(results), "--resume")
    assert code == 0, err[-3000:]
    assert len(run_dirs(sweep_dir)) == TRIALS
    for name, stamp in before.items():
        assert (sweep_dir / name / "done").stat().st_mtime_ns == stamp, name
    # ... and with nothing on disk yet it runs the whole sweep
    code, out, err = cli(
        "sweep", "--space", str(space_file), "--results", str(results), "--name", "fresh", "--resume",
        "--num-samples", "2",
    )  # fmt: skip
    assert code == 0, err[-3000:]
    fresh = run_dirs(results / "fresh")
    assert len(fresh) == 2 and all((d / "done").exists() for d in fresh), fresh
    assert "search 2 completed" in out
