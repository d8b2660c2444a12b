"""Search efficiency on the quickstart space: ASHA + TPE against random search without early stopping.

For each seed, both sweeps run the same space with the same trial budget (``num_samples``) through the real
``run_sweep``. The figure is the compute ASHA+TPE needs before its best validation H reaches the best validation
H that random search finds with its whole budget, as a fraction of random search's compute (goal ≤ 25 %).
Trials are ordered by their start (``config.yaml`` written first); compute is each run's ``compute_s``.
Prints one JSON object. Needs the synthetic dataset (``zsl-bench data synth --out data/synth``).

Usage: python benchmarks/search_efficiency.py [--seeds 0 1 2] [--samples 16] [--data data/synth]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def trajectory(sweep_dir: Path) -> list[tuple[float, float]]:
    """[(cumulative compute s, best val H so far)] over the sweep's search trials in start order."""
    from zsl_bench.rundir import CONFIG
    from zsl_bench.search.stages import search_runs, selection_value

    runs = sorted(search_runs(sweep_dir), key=lambda r: (r.path / CONFIG).stat().st_mtime)
    out, spent, best = [], 0.0, 0.0
    for run in runs:
        spent += float((run.summary or {}).get("compute_s", 0.0))
        best = max(best, selection_value(run, "val/h") or 0.0)
        out.append((spent, best))
    return out


def compute_to_reach(traj: list[tuple[float, float]], target: float) -> float | None:
    return next((spent for spent, best in traj if best >= target - 1e-12), None)


def one_sweep(searcher: str, scheduler: str, seed: int, samples: int, data: Path, root: Path) -> list[Any]:
    from zsl_bench.config import build_config
    from zsl_bench.search.space import load_space
    from zsl_bench.search.tune_backend import run_sweep

    space, base = load_space(REPO / "zsl_bench" / "spaces" / "quickstart.yaml")
    sweep = space.sweep.replace(searcher=searcher, scheduler=scheduler, seed=seed, num_samples=samples, top_k=0)
    space = space.model_copy(update={"sweep": sweep})
    base = build_config(base.model_dump(mode="json"), {"data.root": str(data.resolve())})
    name = f"{searcher}-{scheduler}-seed{seed}"
    run_sweep(space, base, root, name)
    return trajectory(root / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synth")
    args = parser.parse_args()

    per_seed = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            asha = one_sweep("optuna", "asha", seed, args.samples, args.data, Path(tmp))
            rand = one_sweep("random", "fifo", seed, args.samples, args.data, Path(tmp))
            target, budget = rand[-1][1], rand[-1][0]
            needed = compute_to_reach(asha, target)
            per_seed.append(
                {
                    "seed": seed,
                    "random_best_val_h": round(target, 4),
                    "random_compute_s": round(budget, 1),
                    "asha_tpe_best_val_h": round(asha[-1][1], 4),
                    "asha_tpe_compute_s": round(asha[-1][0], 1),
                    "asha_tpe_compute_to_match_s": None if needed is None else round(needed, 1),
                    "fraction": None if needed is None else round(needed / budget, 3),
                }
            )
    fractions = [s["fraction"] for s in per_seed if s["fraction"] is not None]
    print(
        json.dumps(
            {
                "space": "quickstart.yaml",
                "samples": args.samples,
                "per_seed": per_seed,
                "matched_in": f"{len(fractions)}/{len(per_seed)} seeds",
                "mean_fraction": round(sum(fractions) / len(fractions), 3) if fractions else None,
                "goal_fraction": 0.25,
            }
        )
    )


if __name__ == "__main__":
    main()
