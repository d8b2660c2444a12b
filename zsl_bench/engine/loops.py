"""One training epoch and the score computation of an evaluation, streaming batches from an image source."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zsl_bench.data.features import FeatureBatch, FeatureSource
from zsl_bench.data.stream import ImageSource, batches
from zsl_bench.data.transforms import TransformSpec, augment
from zsl_bench.models.base import ImageSampler, TrainContext, ZslModel


@dataclass
class TrainSettings:
    """How one epoch steps: micro-batch size, optimiser step every ``grad_accum`` batches, norm clipping."""

    batch_size: int
    grad_accum: int = 1
    grad_clip: float | None = None


def image_sampler(
    source: ImageSource,
    pools: dict[str, list[np.ndarray]],
    spec: TransformSpec,
    generator: torch.Generator,
    device: torch.device,
) -> ImageSampler | None:
    """``sample(rows [K], pool) -> images [K, 3, S, S]``: one random (augmented) image of each seen-class row.

    ``pools[pool][row]`` holds the dataset indices a row may draw from (``train``: the stage's training images of
    that class; ``all``: every image of the class). None when ``source`` holds features, not images."""
    if isinstance(source, FeatureSource):
        return None

    def sample(rows: torch.Tensor, pool: str = "train") -> torch.Tensor:
        if pool not in pools:
            raise ValueError(f"unknown image pool {pool!r}; pools: {', '.join(pools)}")
        picks = []
        for row in rows.tolist():
            candidates = pools[pool][row]
            picks.append(int(candidates[torch.randint(len(candidates), (1,), generator=generator).item()]))
        images = source.get(np.asarray(picks))
        return augment(images, spec, train=True, generator=generator).to(device)

    return sample


def class_pools(labels: np.ndarray, train_idx: np.ndarray, seen_classes: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Per seen-class row, the image indices of the ``train`` pool (``train_idx``) and the ``all`` pool."""
    everything = np.arange(labels.size)
    return {
        "train": [train_idx[labels[train_idx] == c] for c in seen_classes],
        "all": [everything[labels == c] for c in seen_classes],
    }


def train_epoch(
    model: ZslModel,
    optimizer: torch.optim.Optimizer,
    source: ImageSource,
    train_idx: np.ndarray,
    targets: np.ndarray,
    ctx: TrainContext,
    settings: TrainSettings,
    spec: TransformSpec,
    device: torch.device,
) -> dict[str, float]:
    """One shuffled pass over the images ``train_idx`` [n] of ``source``; returns the mean of every loss entry.

    ``targets`` [N] maps a dataset index to its row of ``ctx.seen_classes``. The model's ``training_loss`` gives
    the losses of a micro-batch; ``total`` / ``grad_accum`` is back-propagated and the optimiser steps every
    ``grad_accum`` micro-batches (and after the last, unless the model keeps that tail). A non-finite loss raises
    ``FloatingPointError``. After each micro-batch the model is asked (:meth:`ZslModel.eval_after_batch`) whether it
    trains the rest of the epoch in eval mode. A model whose :meth:`ZslModel.keeps_grad_tail` is True gets no step
    on the gradients of the micro-batches after the epoch's last full ``grad_accum`` group: they stay on the
    parameters (nothing is zeroed at the epoch's start either) and add to the next epoch's first step.
    """
    model.train()
    sums: dict[str, float] = {}
    seen, pending = 0, 0
    params = [p for group in optimizer.param_groups for p in group["params"]]
    keep_tail = model.keeps_grad_tail()
    if not keep_tail:
        optimizer.zero_grad(set_to_none=True)
    count = math.ceil(len(train_idx) / settings.batch_size)
    stream = batches(source, train_idx, settings.batch_size, shuffle=True, generator=ctx.generator)
    for number, (idx, images) in enumerate(stream, start=1):
        x = model_input(images, spec, True, ctx.generator, device)  # images [B, 3, S, S] or cached features
        batch = {"image": x, "target": torch.as_tensor(targets[idx], device=device)}
        losses = model.training_loss(batch, ctx)
        loss = losses["total"]
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} after {seen} samples of the epoch")
        (loss / settings.grad_accum).backward()
        pending += 1
        if pending == settings.grad_accum:
            _step(optimizer, params, settings.grad_clip)
            pending = 0
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(idx)
        seen += len(idx)
        if model.training and model.eval_after_batch(ctx.epoch, number, count, settings.grad_accum):
            model.eval()
    if pending and not keep_tail:
        _step(optimizer, params, settings.grad_clip)
    return {name: total / max(seen, 1) for name, total in sums.items()}


def _step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], clip: float | None) -> None:
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def model_input(
    raw: torch.Tensor | FeatureBatch,
    spec: TransformSpec,
    train: bool,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """A batch from a source as the model's input, on ``device``: uint8 images [B, 3, S, S] augmented; cached
    features with, when training flips, each sample's flipped view drawn exactly as the image flip would be."""
    if not isinstance(raw, FeatureBatch):
        return augment(raw, spec, train=train, generator=generator).to(device)
    flip = torch.rand(len(raw), generator=generator) < 0.5 if train and spec.hflip else None  # = random_hflip
    x = raw.select(flip)
    return x.to(device) if isinstance(x, torch.Tensor) else {k: v.to(device) for k, v in x.items()}


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
    scores = score_batches(lambda x: model.class_scores(model(x), class_att), source, indices, batch_size, spec, device)
    return scores.cpu().numpy()


def score_batches(
    score: Callable[[Any], torch.Tensor],
    source: ImageSource,
    indices: np.ndarray,
    batch_size: int,
    spec: TransformSpec,
    device: torch.device,
) -> torch.Tensor:
    """``score`` (a model input of b images → [b, C]) over ``indices`` [n] in batches: float32 [n, C] on ``device``.

    The caller sets eval mode and grad mode; :func:`class_scores` and the distributed strategies share this loop.
    """
    chunks = []
    for _, images in batches(source, indices, batch_size):
        chunks.append(score(model_input(images, spec, False, None, device)).float())
    return torch.cat(chunks)


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
