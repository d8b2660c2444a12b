"""Optimiser groups, lr schedules, gradient accumulation and the TrainContext the engine hands to models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsl_bench.config import build_config
from zsl_bench.data.stream import InMemoryImages
from zsl_bench.data.transforms import TransformSpec
from zsl_bench.engine.loops import Inputs, TrainSettings, class_pools, image_sampler, train_epoch
from zsl_bench.engine.optim import build_optimizer, lr_factor, start_epoch
from zsl_bench.errors import UserError
from zsl_bench.models.base import TrainContext, ZslModel


class Tiny(ZslModel):
    """A linear image → attribute model with three named groups."""

    def __init__(self, attrs: int = 3) -> None:
        super().__init__()
        self.backbone = torch.nn.Linear(3 * 4 * 4, 8)
        self.head = torch.nn.Linear(8, attrs)
        self.extra = torch.nn.Parameter(torch.zeros(attrs))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"attr": self.head(self.backbone(images.flatten(1))) + self.extra}

    def param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()), "head": list(self.head.parameters()), "sef": [self.extra]}


def _cfg(**optim: object) -> object:
    return build_config({"train": {"epochs": 50}, "optim": {"lr": 1.0, **optim}})


def test_group_learning_rates() -> None:
    opt = build_optimizer(Tiny(), _cfg(name="sgd", backbone_lr=0.1, head_lr=0.2, group_lr={"sef": 0.3}))
    assert {g["name"]: g["lr"] for g in opt.param_groups} == {"backbone": 0.1, "head": 0.2, "sef": 0.3}
    assert isinstance(opt, torch.optim.SGD)
    assert isinstance(build_optimizer(Tiny(), _cfg(name="adam")), torch.optim.Adam)


def test_unknown_group_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"unknown group.*sefx.*its groups: backbone, head, sef"):
        build_optimizer(Tiny(), _cfg(group_lr={"sefx": 0.3}))


@pytest.mark.parametrize(
    ("optim", "expected"),
    [
        (
            {"schedule": "multistep", "milestones": [10, 20, 30, 40], "lr_decay": 0.5},
            {1: 1, 10: 1, 11: 0.5, 21: 0.25, 50: 1 / 16},
        ),
        ({"schedule": "step", "step_size": 10, "lr_decay": 0.8}, {1: 1, 10: 1, 11: 0.8, 21: 0.64}),
        ({"schedule": "cosine"}, {1: 1, 26: 0.5, 50: pytest.approx(0.001, abs=1e-3)}),
        ({"schedule": "none", "warmup_epochs": 3}, {1: 0.25, 3: 0.75, 4: 1}),
    ],
)
def test_schedules(optim: dict, expected: dict[int, float]) -> None:
    cfg = _cfg(**optim)
    for epoch, factor in expected.items():
        assert lr_factor(cfg, epoch) == pytest.approx(factor)


def test_start_epoch_sets_lr_from_base_and_can_reset_state() -> None:
    model = Tiny()
    cfg = _cfg(name="sgd", schedule="step", step_size=1, lr_decay=0.5, reset_state_each_epoch=True)
    opt = build_optimizer(model, cfg)
    model(torch.ones(1, 3, 4, 4))["attr"].sum().backward()
    opt.step()
    assert opt.state  # momentum buffers exist
    start_epoch(opt, cfg, 3)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25, 0.25] and not opt.state
    restored = build_optimizer(Tiny(), cfg)
    restored.load_state_dict(opt.state_dict())  # a resumed run keeps the base lr, not the decayed one
    start_epoch(restored, cfg, 2)
    assert [g["lr"] for g in restored.param_groups] == [0.5, 0.5, 0.5]


def _epoch(model: Tiny, batch_size: int, accum: int, images: torch.Tensor) -> None:
    cfg = _cfg(name="sgd", momentum=0.0, weight_decay=0.0, lr=0.1)
    opt = build_optimizer(model, cfg)
    att = torch.eye(3)
    labels = np.arange(8) % 3
    ctx = TrainContext(att, torch.arange(3), torch.arange(0), 1, torch.Generator().manual_seed(0))
    spec = TransformSpec(resize=4, norm="symmetric")
    inputs = Inputs(InMemoryImages(images), spec, torch.device("cpu"))
    losses = train_epoch(
        model, opt, inputs, ctx, indices=np.arange(8), targets=labels, settings=TrainSettings(batch_size, accum)
    )
    assert set(losses) == {"total", "ce"} and np.isfinite(losses["total"])


def test_gradient_accumulation_matches_the_full_batch() -> None:
    images = torch.randint(0, 256, (8, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    full, accumulated = Tiny(), Tiny()
    accumulated.load_state_dict(full.state_dict())
    _epoch(full, 8, 1, images)  # one step over all 8 images
    _epoch(accumulated, 4, 2, images)  # two micro-batches of 4, one step
    for a, b in zip(full.parameters(), accumulated.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    stepped_twice = Tiny()
    stepped_twice.load_state_dict(accumulated.state_dict())
    _epoch(stepped_twice, 4, 1, images)
    assert not torch.equal(stepped_twice.head.weight, accumulated.head.weight)


def test_image_sampler_draws_from_the_class_pool() -> None:
    labels = np.array([0, 1, 0, 1, 2, 2])
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 3, 2, 2).contiguous()
    pools = class_pools(labels, train_idx=np.array([0, 1, 3]), seen_classes=np.array([0, 1]))
    assert [p.tolist() for p in pools["train"]] == [[0], [1, 3]]
    assert [p.tolist() for p in pools["all"]] == [[0, 2], [1, 3]]
    spec = TransformSpec(resize=2, norm="symmetric")
    sample = image_sampler(InMemoryImages(images), pools, spec, torch.Generator().manual_seed(0), torch.device("cpu"))
    drawn = {round(float(sample(torch.tensor([1]), "train")[0, 0, 0, 0]) * 127.5 + 127.5) for _ in range(30)}
    assert drawn == {1, 3}
    drawn = {round(float(sample(torch.tensor([0]), "all")[0, 0, 0, 0]) * 127.5 + 127.5) for _ in range(30)}
    assert drawn == {0, 2}
