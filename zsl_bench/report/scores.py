"""The optional test-scores artefact of a run, for seen–unseen curves (AUSUC).

``<run>/test_scores.npz`` (written by the engine at the epoch ``best_by_val`` selects) holds, with no pickled
objects:

``scores``       float32 ``[N, C]``: test scores over all classes, in the run's ``eval.score_space``, before γ
``y_true``       int64 ``[N]``: true class ids (test-seen and test-unseen images)
``seen``         int64 ``[Ks]``: seen class ids of the GZSL label space
``unseen``       int64 ``[Ku]``: unseen class ids
``epoch``        int64 scalar: the epoch the scores come from
``gamma``        float64 scalar: the calibration γ used for the reported U / S / H at that epoch

A run without the file, or with a malformed one, simply has no curve.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEST_SCORES = "test_scores.npz"
_ARRAYS = ("scores", "y_true", "seen", "unseen")


@dataclass(frozen=True)
class TestScores:
    """The arrays of ``test_scores.npz``."""

    scores: np.ndarray
    y_true: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray
    epoch: int | None
    gamma: float | None


@dataclass(frozen=True)
class Curve:
    """A seen–unseen accuracy curve (fractions) with its area and, if known, the reported operating point."""

    label: str
    s: np.ndarray
    u: np.ndarray
    area: float
    point: tuple[float, float] | None  # (S, U) reported at the validation-chosen γ


def load_test_scores(run_dir: Path) -> tuple[TestScores | None, str | None]:
    """``(scores, None)``, or ``(None, why not)`` when the file is absent or malformed."""
    path = Path(run_dir) / TEST_SCORES
    if not path.exists():
        return None, None
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in _ARRAYS if k not in data.files]
            if missing:
                return None, f"{path}: missing {', '.join(missing)}"
            arrays = {k: np.asarray(data[k]) for k in _ARRAYS}
            epoch = int(data["epoch"]) if "epoch" in data.files else None
            gamma = float(data["gamma"]) if "gamma" in data.files else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        return None, f"{path}: cannot be read ({exc})"
    return TestScores(epoch=epoch, gamma=gamma, **arrays), None


def seen_unseen_curve(label: str, ts: TestScores, point: tuple[float, float] | None = None) -> Curve:
    """The exact seen–unseen curve of ``ts`` and its AUSUC (``zsl_bench.metrics.ausuc``)."""
    from zsl_bench.metrics import ausuc

    area, s, u = ausuc(ts.scores, ts.y_true, ts.seen, ts.unseen)
    return Curve(label, s, u, area, point)
