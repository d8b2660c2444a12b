"""Training and evaluation: ``run_trial`` is the one objective every runner (CLI, Ray Tune, SLURM) calls."""

from zsl_bench.engine.trial import run_trial
from zsl_bench.errors import TrialFailed

__all__ = ["TrialFailed", "run_trial"]
