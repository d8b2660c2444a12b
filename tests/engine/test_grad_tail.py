"""The training loop's gradient-tail hook (``ZslModel.keeps_grad_tail``): a model that keeps the tail gets no
optimiser step on the micro-batches after an epoch's last full ``grad_accum`` group, and their gradients add to
the next epoch's first step, as a loop that steps only every ``grad_accum`` batches of an epoch and zeroes only
after a step does. Checked against such a loop written here."""

from __future__ import annotations

import numpy as np
import torch

from zsl_bench.data.stream import InMemoryImages, batches
from zsl_bench.data.transforms import TransformSpec
from zsl_bench.engine.loops import Inputs, TrainSettings, model_input, train_epoch
from zsl_bench.models.base import TrainContext, ZslModel

N, BATCH, ACCUM, EPOCHS, LR = 10, 3, 3, 3, 0.5  # 4 micro-batches per epoch: one step and a tail of 1
SPEC = TransformSpec(resize=4, norm="symmetric")


class Linear(ZslModel):
    """images [B, 3, 4, 4] → attr [B, 3] by one linear map; ``tail`` is its answer to the loop."""

    def __init__(self, tail: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3 * 4 * 4, 3)
        self.tail = tail

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"attr": self.lin(images.flatten(1))}

    def keeps_grad_tail(self) -> bool:
        return self.tail


def _images() -> InMemoryImages:
    return InMemoryImages(
        torch.randint(0, 256, (N, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    )


def _ctx(epoch: int, gen: torch.Generator) -> TrainContext:
    return TrainContext(torch.eye(3), torch.arange(3), torch.arange(0), epoch, gen)


def _engine(tail: bool) -> list[torch.Tensor]:
    """The weight [3, 48] after each epoch of the engine's loop (plain SGD, one optimiser for all epochs)."""
    model, gen, source = Linear(tail), torch.Generator().manual_seed(0), _images()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    weights = []
    for epoch in range(1, EPOCHS + 1):
        settings = TrainSettings(BATCH, ACCUM)
        inputs = Inputs(source, SPEC, torch.device("cpu"))
        train_epoch(
            model, opt, inputs, _ctx(epoch, gen), indices=np.arange(N), targets=np.arange(N) % 3, settings=settings
        )
        weights.append(model.lin.weight.detach().clone())
    return weights


def _reference(step_on_tail: bool) -> list[torch.Tensor]:
    """The loop written out: per micro-batch i (from 0) of an epoch, loss / ACCUM back-propagated and, when
    (i + 1) % ACCUM == 0, a step then zero_grad; nothing zeroed at an epoch's start. ``step_on_tail``: also a step
    (and zero_grad) after an epoch's last batch when gradients are pending (the engine's default)."""
    model, gen, source = Linear(False), torch.Generator().manual_seed(0), _images()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    targets = torch.arange(N) % 3
    weights = []
    for _ in range(EPOCHS):
        pending = 0
        for i, (idx, images) in enumerate(batches(source, np.arange(N), BATCH, shuffle=True, generator=gen)):
            x = model_input(images, SPEC, True, gen, torch.device("cpu"))
            logits = model(x)["attr"] @ torch.eye(3).t()
            (torch.nn.functional.cross_entropy(logits, targets[idx]) / ACCUM).backward()
            pending += 1
            if (i + 1) % ACCUM == 0:
                opt.step()
                opt.zero_grad()
                pending = 0
        if step_on_tail and pending:
            opt.step()
            opt.zero_grad()
        weights.append(model.lin.weight.detach().clone())
    return weights


def test_a_kept_tail_joins_the_next_epochs_first_step() -> None:
    kept, official = _engine(tail=True), _reference(step_on_tail=False)
    stepped, default = _engine(tail=False), _reference(step_on_tail=True)
    for epoch in range(EPOCHS):
        torch.testing.assert_close(kept[epoch], official[epoch], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(stepped[epoch], default[epoch], rtol=1e-6, atol=1e-7)
        assert not torch.allclose(kept[epoch], stepped[epoch], atol=1e-4)  # the tail changes every epoch's weights


def test_the_default_model_steps_on_its_tail() -> None:
    assert ZslModel().keeps_grad_tail() is False
