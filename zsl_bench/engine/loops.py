"""One training epoch and the score computation of an evaluation."""

from __future__ import annotations

import math

import numpy as np
import torch

from zsl_bench.data.images import to_float
from zsl_bench.models.base import ZslModel


def train_epoch(
    model: ZslModel,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    targets: torch.Tensor,
    class_att_seen: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    hflip: bool,
    device: torch.device,
) -> float:
    """One pass over ``images`` uint8 [N, 3, H, W] with ``targets`` [N] (rows of ``class_att_seen`` [S, A]).

    Returns the mean total loss; a non-finite loss raises ``FloatingPointError``.
    """
    model.train()
    order = torch.randperm(images.shape[0], generator=generator)
    total, seen = 0.0, 0
    for start in range(0, order.numel(), batch_size):
        idx = order[start : start + batch_size]
        x = to_float(images[idx], hflip=hflip, generator=generator).to(device)
        batch = {"image": x, "target": targets[idx].to(device)}
        losses = model.loss(model(x), batch, class_att_seen)
        loss = losses["total"]
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at sample {start} of the epoch")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * idx.numel()
        seen += idx.numel()
    return total / max(seen, 1)


@torch.no_grad()
def class_scores(
    model: ZslModel, images: torch.Tensor, class_att: torch.Tensor, batch_size: int, device: torch.device
) -> np.ndarray:
    """Raw class scores [N, C] for uint8 ``images`` [N, 3, H, W] against ``class_att`` [C, A]."""
    model.eval()
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        x = to_float(images[start : start + batch_size]).to(device)
        chunks.append(model.class_scores(model(x), class_att).float().cpu())
    return torch.cat(chunks).numpy()


def to_score_space(scores: np.ndarray, label_space: np.ndarray, space: str) -> np.ndarray:
    """Restrict ``scores`` [N, C] to the ``label_space`` columns (others −inf) and map to ``space``.

    ``softmax``: probabilities over the label space (what ZeroMamba/DUET calibrate); ``raw``: unchanged.
    """
    out = np.full_like(scores, -np.inf)
    cols = scores[:, label_space]
    if space == "softmax":
        cols = cols - cols.max(axis=1, keepdims=True)
        np.exp(cols, out=cols)
        cols /= cols.sum(axis=1, keepdims=True)
    out[:, label_space] = cols
    return out
