"""One training epoch and the score computation of an evaluation, streaming batches from an image source."""

from __future__ import annotations

import math

import numpy as np
import torch

from zsl_bench.data.stream import ImageSource, batches
from zsl_bench.data.transforms import TransformSpec, augment
from zsl_bench.models.base import ZslModel


def train_epoch(
    model: ZslModel,
    optimizer: torch.optim.Optimizer,
    source: ImageSource,
    train_idx: np.ndarray,
    targets: np.ndarray,
    class_att_seen: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    spec: TransformSpec,
    device: torch.device,
) -> float:
    """One shuffled pass over the images ``train_idx`` [n] of ``source``.

    ``targets`` [N] maps a dataset index to its row of ``class_att_seen`` [S, A]. Returns the mean total loss;
    a non-finite loss raises ``FloatingPointError``.
    """
    model.train()
    total, seen = 0.0, 0
    for idx, images in batches(source, train_idx, batch_size, shuffle=True, generator=generator):
        x = augment(images, spec, train=True, generator=generator).to(device)  # [B, 3, S, S]
        batch = {"image": x, "target": torch.as_tensor(targets[idx], device=device)}
        losses = model.loss(model(x), batch, class_att_seen)
        loss = losses["total"]
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} after {seen} samples of the epoch")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        seen += len(idx)
    return total / max(seen, 1)


@torch.no_grad()
def class_scores(
    model: ZslModel,
    source: ImageSource,
    indices: np.ndarray,
    class_att: torch.Tensor,
    batch_size: int,
    spec: TransformSpec,
    device: torch.device,
) -> np.ndarray:
    """Raw class scores [n, C] for the images ``indices`` [n] of ``source`` against ``class_att`` [C, A]."""
    model.eval()
    chunks = []
    for _, images in batches(source, indices, batch_size):
        x = augment(images, spec, train=False).to(device)
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
