"""The fault-injection figures of issue 19: every bad-input case of ``tests/faults/fault_cases*.py`` run through
``zsl_bench.cli.main`` in its own temporary folder (the harness the test suite uses). Prints one JSON object:

    cases_tried, cases_clean     clean: exit code 2, one ``zsl-bench: error:`` line, no traceback, no file left
    tracebacks                   an exception escaped ``main``, or a traceback was printed
    wrong_exit_codes             no traceback, but an exit code other than 2
    files_left                   a file or folder created (or a file changed) under the case's folder
    kills, kills_survived        SIGKILLs in every write window of a 2-epoch run (``kill_windows.py``), each
                                 followed by a rerun; with ``--sweeps`` also the driver kills and the lost node of
                                 ``sweep_kills.py`` (a few minutes: real Ray clusters)
    trials_lost, trials_duplicated    over those: runs damaged by a kill, sweep trials lost or run twice

Usage: python benchmarks/faults.py [--only SUBSTRING] [--details] [--no-kills] [--sweeps]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FAULTS = Path(__file__).resolve().parents[1] / "tests" / "faults"


def measure(only: str | None = None) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The figures of the bad-input table (cases whose id contains ``only``) and each unclean case's problems."""
    sys.path.insert(0, str(FAULTS))
    from fault_cases_more import all_cases
    from fault_harness import run_all

    cases = [c for c in all_cases() if only is None or only in c.id]
    start = time.perf_counter()
    outcomes = run_all(cases)
    problems = {c.id: outcomes[c.id].problems(c.expect) for c in cases}
    tracebacks = [c.id for c in cases if outcomes[c.id].traceback]
    figures: dict[str, Any] = {
        "cases_tried": len(cases),
        "cases_clean": sum(1 for p in problems.values() if not p),
        "tracebacks": len(tracebacks),
        "wrong_exit_codes": sum(1 for c in cases if c.id not in tracebacks and outcomes[c.id].code != 2),
        "files_left": sum(1 for c in cases if outcomes[c.id].changed),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    return figures, {k: v for k, v in problems.items() if v}


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> tuple[int, str, str]:
    """``zsl-bench ARGS`` in a fresh interpreter → (exit code, stdout, stderr), as the tests' ``cli`` fixture."""
    import os

    command = [sys.executable, "-m", "zsl_bench.cli", *args]
    proc = subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def kills(sweeps: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The kill figures (summed) and each scenario's own."""
    from zsl_bench.data.features import write_synth_res101
    from zsl_bench.data.synth import generate

    with tempfile.TemporaryDirectory(prefix="zsl-faults-") as tmp:
        data = Path(tmp) / "synth"
        generate(data)
        write_synth_res101(data)
        runner = FAULTS / "kill_windows.py"
        command = [sys.executable, str(runner), str(data), str(Path(tmp) / "runs"), "--model", "ale"]
        windows = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        scenarios = {"write_windows": windows}
        if sweeps:
            from sweep_kills import driver_kills, node_loss

            for name, scenario in (("driver_kills", driver_kills), ("node_loss", node_loss)):
                work = Path(tmp) / name
                work.mkdir()
                scenarios[name] = scenario(data, work, _cli)
    totals = {
        "kills": sum(s["kills"] for s in scenarios.values()),
        "kills_survived": sum(s["kills_survived"] for s in scenarios.values()),
        "trials_lost": len(windows["failures"]) + sum(s.get("trials_lost", 0) for s in scenarios.values()),
        "trials_duplicated": sum(s.get("trials_duplicated", 0) for s in scenarios.values()),
    }
    return totals, scenarios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="run the cases whose id contains this text")
    parser.add_argument("--details", action="store_true", help="also list each unclean case and its problems")
    parser.add_argument("--no-kills", action="store_true", help="only the bad-input table")
    parser.add_argument("--sweeps", action="store_true", help="also kill sweep drivers and a Ray node (minutes)")
    args = parser.parse_args()
    figures, unclean = measure(args.only)
    survived = True
    if not args.no_kills:
        totals, scenarios = kills(args.sweeps)
        figures.update(totals)
        figures["kill_scenarios"] = scenarios
        survived = totals["kills_survived"] == totals["kills"] and not totals["trials_duplicated"]
    if args.details:
        figures["unclean"] = unclean
    print(json.dumps(figures))
    return 0 if not unclean and survived else 1


if __name__ == "__main__":
    sys.exit(main())
