"""The one training loop of every strategy, and the score computation of an evaluation, streaming batches from an
image source.

:func:`train_epoch` is called by :class:`zsl_bench.engine.trial._Trial` for every strategy; the strategy (a
:class:`Steps`: :class:`LocalSteps` here for one process, :mod:`zsl_bench.engine.distributed` and
:mod:`zsl_bench.engine.zero` for a process group) supplies its shard of the epoch, the forward, backward, optimiser
step and the reduction of the epoch's losses. :func:`class_scores` / :func:`score_batches` score evaluation images.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from zsl_bench.data.features import FeatureBatch, FeatureSource
from zsl_bench.data.stream import ImageSource, InMemoryImages, batches
from zsl_bench.data.transforms import TransformSpec, augment
from zsl_bench.models.base import ImageSampler, TrainContext, ZslModel


@dataclass
class TrainSettings:
    """How one epoch steps: micro-batch size, optimiser step every ``grad_accum`` batches, norm clipping."""

    batch_size: int
    grad_accum: int = 1
    grad_clip: float | None = None


@dataclass(frozen=True)
class Inputs:
    """Where a trial's images come from and how they reach the model: ``source`` (images uint8 [N, 3, S, S] or
    cached features), the transform ``spec``, and the ``device`` the model runs on."""

    source: ImageSource
    spec: TransformSpec
    device: torch.device


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


class Steps(Protocol):
    """What a training strategy supplies to :func:`train_epoch`: the one interface of that extension point."""

    def shard(self, indices: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """This process's shuffled share [m] of the epoch's images ``indices`` [n], drawn from ``generator``."""
        ...

    def keeps_grad_tail(self, model: ZslModel) -> bool:
        """Whether the epoch's last incomplete ``grad_accum`` group stays unstepped (see :func:`train_epoch`)."""
        ...

    def start_epoch(self, model: ZslModel, optimizer: Any, *, keep_tail: bool) -> None:
        """Train mode, and gradients zeroed unless ``keep_tail``."""
        ...

    def accumulate(self, boundary: bool) -> AbstractContextManager[Any]:
        """The context of one micro-batch's forward and backward; ``boundary``: the optimiser steps after it."""
        ...

    def forward(self, model: ZslModel, batch: dict[str, Any], ctx: TrainContext) -> dict[str, torch.Tensor]:
        """The losses of one micro-batch (``total`` and its parts, scalars)."""
        ...

    def check_finite(self, loss: torch.Tensor, seen: int) -> None:
        """Raise ``FloatingPointError`` when ``loss`` is not finite (``seen`` samples of the epoch so far)."""
        ...

    def backward(self, loss: torch.Tensor, grad_accum: int) -> None:
        """Back-propagate ``loss`` averaged over the ``grad_accum`` micro-batches of one step."""
        ...

    def step(self, optimizer: Any, *, boundary: bool, clip: float | None) -> None:
        """After every micro-batch: at a ``boundary``, clip the gradient norm, step and zero the gradients."""
        ...

    def reduce(self, sums: dict[str, float], seen: int) -> dict[str, float]:
        """The epoch's mean losses from this process's ``sums`` (loss × samples) over its ``seen`` samples."""
        ...


class LocalSteps:
    """The :class:`Steps` of one process: plain autograd and the optimiser it is given."""

    rank = 0
    world_size = 1

    def shard(self, indices: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """A shuffled order drawn from ``generator`` (as ``batches`` draws it), padded with its first images to a
        multiple of the world size; this rank's part is every ``world_size``-th from ``rank``."""
        order = np.asarray(indices, dtype=np.int64)[torch.randperm(len(indices), generator=generator).numpy()]
        pad = -len(order) % self.world_size
        order = np.concatenate([order, order[:pad]])
        return order[self.rank :: self.world_size]

    def keeps_grad_tail(self, model: ZslModel) -> bool:
        return model.keeps_grad_tail()

    def start_epoch(self, model: ZslModel, optimizer: Any, *, keep_tail: bool) -> None:
        model.train()
        if not keep_tail:
            optimizer.zero_grad(set_to_none=True)

    def accumulate(self, boundary: bool) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def forward(self, model: ZslModel, batch: dict[str, Any], ctx: TrainContext) -> dict[str, torch.Tensor]:
        return model.training_loss(batch, ctx)

    def check_finite(self, loss: torch.Tensor, seen: int) -> None:
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} after {seen} samples of the epoch")

    def backward(self, loss: torch.Tensor, grad_accum: int) -> None:
        (loss / grad_accum).backward()

    def step(self, optimizer: Any, *, boundary: bool, clip: float | None) -> None:
        if not boundary:
            return
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def reduce(self, sums: dict[str, float], seen: int) -> dict[str, float]:
        return {name: total / max(seen, 1) for name, total in sums.items()}


LOCAL = LocalSteps()


def train_epoch(
    model: ZslModel,
    optimizer: Any,
    inputs: Inputs,
    ctx: TrainContext,
    *,
    indices: np.ndarray,
    targets: np.ndarray,
    settings: TrainSettings,
    steps: Steps = LOCAL,
) -> dict[str, float]:
    """One shuffled pass over the images ``indices`` [n] of ``inputs.source``; returns the mean of every loss entry.

    ``targets`` [N] maps a dataset index to its row of ``ctx.seen_classes``. ``steps`` (the strategy) gives this
    process its shard of the order and runs each micro-batch: the model's ``training_loss`` gives its losses;
    ``total`` / ``grad_accum`` is back-propagated and the optimiser steps every ``grad_accum`` micro-batches (and
    after the last, unless the strategy keeps that tail). A non-finite loss raises ``FloatingPointError``. After
    each micro-batch the model is asked (:meth:`ZslModel.eval_after_batch`) whether it trains the rest of the
    epoch in eval mode. When :meth:`Steps.keeps_grad_tail` is True (a single process asks the model's
    :meth:`ZslModel.keeps_grad_tail`), the gradients of the micro-batches after the epoch's last full ``grad_accum``
    group get no step: they stay on the parameters (nothing is zeroed at the epoch's start either) and add to the
    next epoch's first step.
    """
    keep_tail = steps.keeps_grad_tail(model)
    steps.start_epoch(model, optimizer, keep_tail=keep_tail)
    order = steps.shard(indices, ctx.generator)  # [m]: this process's part of the shuffled epoch
    count = math.ceil(len(order) / settings.batch_size)
    sums: dict[str, float] = {}
    seen = 0
    reads = batches(inputs.source, order, settings.batch_size, prefetch=read_ahead(inputs.source))
    for number, (idx, raw) in enumerate(reads, start=1):
        x = model_input(raw, inputs.spec, True, ctx.generator, inputs.device)  # images [B, 3, S, S] or features
        batch = {"image": x, "target": torch.as_tensor(targets[idx], device=inputs.device)}
        boundary = number % settings.grad_accum == 0 or (number == count and not keep_tail)
        with steps.accumulate(boundary):
            losses = steps.forward(model, batch, ctx)
            steps.check_finite(losses["total"], seen)
            steps.backward(losses["total"], settings.grad_accum)
        steps.step(optimizer, boundary=boundary, clip=settings.grad_clip)
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(idx)
        seen += len(idx)
        if model.training and model.eval_after_batch(ctx.epoch, number, count, settings.grad_accum):
            model.eval()
    return steps.reduce(sums, seen)


def read_ahead(source: ImageSource) -> int:
    """Batches :func:`~zsl_bench.data.stream.batches` reads ahead in its thread: none from a source in memory
    (cached features, decoded images), whose reads cost less than handing them over; 2 from files."""
    return 0 if isinstance(source, (FeatureSource, InMemoryImages)) else 2


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
    model: ZslModel, inputs: Inputs, indices: np.ndarray, class_att: torch.Tensor, *, batch_size: int
) -> np.ndarray:
    """Raw class scores [n, C] for the images ``indices`` [n] of ``inputs.source`` against ``class_att`` [C, A]."""
    model.eval()
    scores = score_batches(lambda x: model.class_scores(model(x), class_att), inputs, indices, batch_size=batch_size)
    return scores.cpu().numpy()


def score_batches(
    score: Callable[[Any], torch.Tensor], inputs: Inputs, indices: np.ndarray, *, batch_size: int
) -> torch.Tensor:
    """``score`` (a model input of b images → [b, C]) over ``indices`` [n] in batches: float32 [n, C] on
    ``inputs.device``.

    The caller sets eval mode and grad mode; :func:`class_scores` and the distributed strategies share this loop.
    """
    chunks = []
    for _, images in batches(inputs.source, indices, batch_size, prefetch=read_ahead(inputs.source)):
        chunks.append(score(model_input(images, inputs.spec, False, None, inputs.device)).float())
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
