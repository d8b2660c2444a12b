"""The fault-injection figures of issue 19: every bad-input case of ``tests/faults/fault_cases*.py`` run through
``zsl_bench.cli.main`` in its own temporary folder (the harness the test suite uses). Prints one JSON object:

    cases_tried, cases_clean     clean: exit code 2, one ``zsl-bench: error:`` line, no traceback, no file left
    tracebacks                   an exception escaped ``main``, or a traceback was printed
    wrong_exit_codes             no traceback, but an exit code other than 2
    files_left                   a file or folder created (or a file changed) under the case's folder
    kills_survived, trials_lost, trials_duplicated    the kill tests' figures (null until they are part of it)

Usage: python benchmarks/faults.py [--only SUBSTRING] [--details]
"""

from __future__ import annotations

import argparse
import json
import sys
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
        "kills_survived": None,
        "trials_lost": None,
        "trials_duplicated": None,
        "note": "kill figures are null: the SIGKILL / node-loss tests are not part of this script yet",
        "wall_s": round(time.perf_counter() - start, 1),
    }
    return figures, {k: v for k, v in problems.items() if v}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="run the cases whose id contains this text")
    parser.add_argument("--details", action="store_true", help="also list each unclean case and its problems")
    args = parser.parse_args()
    figures, unclean = measure(args.only)
    if args.details:
        figures["unclean"] = unclean
    print(json.dumps(figures))
    return 0 if not unclean else 1


if __name__ == "__main__":
    sys.exit(main())
