"""The evaluation of one epoch: CZSL and GZSL accuracy on every evaluation set of the protocol.

Called by :class:`zsl_bench.engine.trial._Trial` after every training epoch, with the strategy's
``class_scores`` (one process, or every rank scoring a block of the images).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from zsl_bench import metrics
from zsl_bench.config import EvalConfig
from zsl_bench.data.protocol import Protocol as SplitProtocol
from zsl_bench.engine.loops import Inputs, class_scores, to_score_space
from zsl_bench.models.base import ZslModel


class ScoresOf(Protocol):
    """Raw class scores [n, C] of the images ``indices`` [n] against ``class_att`` [C, A]."""

    def __call__(
        self, model: ZslModel, inputs: Inputs, indices: np.ndarray, class_att: torch.Tensor, *, batch_size: int
    ) -> np.ndarray: ...


def evaluate(
    model: ZslModel,
    inputs: Inputs,
    proto: SplitProtocol,
    att: torch.Tensor,
    *,
    labels: np.ndarray,
    settings: EvalConfig,
    scores_of: ScoresOf = class_scores,
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """CZSL and GZSL on every evaluation set; gamma is chosen on ``val`` (or fixed by ``settings.gamma``).

    ``att`` [C, A] holds every class's attributes and ``labels`` [N] every image's class. Images are scored
    ``settings.batch_for(inputs.device)`` at a time (``eval.batch_size``; unset: 64 on CPU, 256 on CUDA; no metric
    depends on it beyond float rounding). CZSL, U and S average over classes or over samples as
    ``settings.accuracy`` says (and every record names it). Returns the records by split name, and the test scores
    ``{"scores" [N, C], "y_true" [N], "seen", "unseen"}`` in the calibrated score space (before gamma)."""
    gamma, gamma_from = (settings.gamma, "fixed") if settings.gamma is not None else (None, "val")
    if gamma is None and not any(ev.name == "val" for ev in proto.evals):
        gamma, gamma_from = 0.0, "fixed"  # stage final without a fixed gamma: plain argmax
    out = {}
    acc = settings.accuracy
    batch = settings.batch_for(inputs.device)  # eval.batch_size, or the device's default
    for ev in proto.evals:  # "val" precedes "test", so test reuses the gamma chosen on val
        idx = ev.indices
        raw = scores_of(model, inputs, idx, att, batch_size=batch)
        scores = to_score_space(raw, np.concatenate([ev.seen_classes, ev.unseen_classes]), settings.score_space)
        y = labels[idx]
        if gamma is None:
            gamma = metrics.calibrate_gamma(scores, y, ev.seen_classes, ev.unseen_classes, accuracy=acc)
        gz = metrics.gzsl_accuracy(scores, y, ev.seen_classes, ev.unseen_classes, gamma=gamma, accuracy=acc)
        unseen_rows = np.isin(y, ev.unseen_classes)
        czsl = metrics.czsl_accuracy(scores[unseen_rows], y[unseen_rows], ev.unseen_classes, accuracy=acc)
        out[ev.name] = {
            "czsl": float(czsl),
            **{k: float(v) for k, v in gz.items()},
            "gamma": float(gamma),
            "gamma_from": gamma_from,
            "score_space": settings.score_space,
            "accuracy": acc,
        }
        if ev.name == "test":  # what the papers report: gamma calibrated on test itself (best_by_test)
            oracle = metrics.calibrate_gamma(scores, y, ev.seen_classes, ev.unseen_classes, extra=[gamma], accuracy=acc)
            gz = metrics.gzsl_accuracy(scores, y, ev.seen_classes, ev.unseen_classes, gamma=oracle, accuracy=acc)
            out[ev.name]["calibrated_on_test"] = {"gamma": float(oracle), **{k: float(v) for k, v in gz.items()}}
            test_scores = {"scores": scores, "y_true": y, "seen": ev.seen_classes, "unseen": ev.unseen_classes}
    return out, test_scores
