"""The training loop's eval-mode hook (``ZslModel.eval_after_batch``): asked after every micro-batch; once it says
yes, the rest of the epoch trains in eval mode, and the next epoch starts in train mode again."""

from __future__ import annotations

import numpy as np
import torch

from zsl_bench.config import build_config
from zsl_bench.data.stream import InMemoryImages
from zsl_bench.data.transforms import TransformSpec
from zsl_bench.engine.loops import Inputs, TrainSettings, train_epoch
from zsl_bench.engine.optim import build_optimizer
from zsl_bench.models.base import TrainContext, ZslModel


class Recorder(ZslModel):
    """A linear model with dropout that records, per micro-batch, whether it trained in train mode and what the loop
    asked; it wants eval mode after the batches ``switch_after`` (1-based)."""

    def __init__(self, switch_after: set[int]) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3 * 4 * 4, 3)
        self.drop = torch.nn.Dropout(0.5)
        self.switch_after = switch_after
        self.modes: list[bool] = []
        self.asked: list[tuple[int, int, int, int]] = []

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"attr": self.lin(self.drop(images.flatten(1)))}

    def training_loss(self, batch, ctx):
        self.modes.append(self.training)
        return super().training_loss(batch, ctx)

    def eval_after_batch(self, epoch: int, batch: int, batches: int, grad_accum: int) -> bool:
        self.asked.append((epoch, batch, batches, grad_accum))
        return batch in self.switch_after


def _epochs(model: Recorder, epochs: int, n: int = 10, batch_size: int = 3, accum: int = 2) -> None:
    cfg = build_config({"model": {"name": "resnet_test"}, "data": {"name": "synth"}, "optim": {"name": "sgd"}})
    opt = build_optimizer(model, cfg)
    images = torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(0)
    for epoch in range(1, epochs + 1):
        ctx = TrainContext(torch.eye(3), torch.arange(3), torch.arange(0), epoch, gen)
        train_epoch(
            model,
            opt,
            Inputs(InMemoryImages(images), TransformSpec(resize=4, norm="symmetric"), torch.device("cpu")),
            ctx,
            indices=np.arange(n),
            targets=np.arange(n) % 3,
            settings=TrainSettings(batch_size, accum),
        )


def test_the_rest_of_the_epoch_runs_in_eval_mode() -> None:
    model = Recorder({2})
    _epochs(model, 2)  # 10 images in batches of 3: 4 micro-batches per epoch
    assert model.modes == [True, True, False, False] * 2  # train again at the start of epoch 2
    # asked after each batch until it switched; (epoch, batch, batches per epoch, grad_accum)
    assert model.asked == [(1, 1, 4, 2), (1, 2, 4, 2), (2, 1, 4, 2), (2, 2, 4, 2)]


def test_the_default_model_never_switches() -> None:
    model = Recorder(set())
    _epochs(model, 1)
    assert model.modes == [True] * 4
    assert ZslModel().eval_after_batch(3, 100, 100, 1) is False
