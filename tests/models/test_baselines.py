"""The CNN/ViT baselines: shapes, heads, scoring, frozen mode and learning-rate groups, weights, and learning.

Everything here uses the tiny models (random init, 64 px); the full-size ones are in test_baselines_full.py.
"""

from __future__ import annotations

import pytest
import torch

from zsl_bench.config import build_config
from zsl_bench.engine import run_trial
from zsl_bench.engine.optim import build_optimizer
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS, build_model

TINY = ["resnet_test", "vit_test", "deit_test"]
FULL = ["resnet101_ale", "resnet101_attn", "vit_b16_ale", "vit_b16_attn", "deit_b16_ale", "deit_b16_attn"]


def _att(classes: int = 7, attributes: int = 13) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.rand(classes, attributes, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("head", ["pooled", "attention"])
@pytest.mark.parametrize("scoring", ["dot", "cosine"])
def test_shapes_scores_and_loss(name: str, head: str, scoring: str) -> None:
    model = build_model(name, num_attributes=13, image_size=64, head=head, scoring=scoring, attr_weight=0.5)
    out = model(torch.randn(4, 3, 64, 64))
    assert out["attr"].shape == (4, 13) and out["features"].ndim == 2
    if head == "attention":
        n = 16 if name == "resnet_test" else 64  # 4 x 4 regions (stride 16 at 3 stages) / 8 x 8 patches
        assert out["attention"].shape == (4, 13, n)
        torch.testing.assert_close(out["attention"].sum(-1), torch.ones(4, 13))
    att = _att()
    assert model.class_scores(out, att).shape == (4, 7)
    loss = model.loss(out, {"target": torch.tensor([0, 1, 2, 3])}, att)
    assert set(loss) == {"total", "ce", "attr"}
    torch.testing.assert_close(loss["total"], loss["ce"] + 0.5 * loss["attr"])
    loss["total"].backward()
    assert all(p.grad is not None for p in model.head.parameters())
    if scoring == "cosine":
        assert model.scorer.log_scale.grad is not None  # the scale is learnt
        torch.testing.assert_close(model.scorer.log_scale.exp(), torch.tensor(10.0))


def test_cosine_scores_are_scaled_cosines() -> None:
    model = build_model("resnet_test", 13, 64, scoring="cosine", scale=5.0)
    attr = torch.randn(3, 13)
    att = _att()
    expected = 5.0 * torch.nn.functional.cosine_similarity(attr[:, None], att[None], dim=-1)
    torch.testing.assert_close(model.class_scores({"attr": attr}, att), expected)
    assert set(model.loss({"attr": attr}, {"target": torch.tensor([0, 1, 2])}, att)) == {"total", "ce"}


def test_unknown_and_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"has no option.*wdith.*width"):
        build_model("resnet_test", 13, 64, wdith=8)
    with pytest.raises(UserError, match=r"option 'head'.*'pooled' or 'attention'.*'cls'"):  # typed: Literal
        build_model("vit_test", 13, 64, head="cls")
    with pytest.raises(UserError, match=r"option 'scoring'.*'dot' or 'cosine'"):
        build_model("vit_test", 13, 64, scoring="cos")
    with pytest.raises(UserError, match=r"has no option.*head"):  # full-size names fix their head
        build_model("resnet101_ale", 13, 224, head="attention")


def test_registry_lists_every_baseline() -> None:
    assert set(TINY + FULL) <= set(MODELS.names())


def test_vit_runs_at_other_sizes_and_renormalises_input() -> None:
    model = build_model("vit_test", 13, 64).eval()
    out = model(torch.randn(2, 3, 96, 96))  # 12 x 12 patches against a 8 x 8 position table
    assert out["attr"].shape == (2, 13)
    backbone = model.backbone
    backbone.symmetric_input = True
    grey = torch.zeros(1, 3, 1, 1)  # pixel value = the ImageNet mean, after ImageNet normalisation
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    torch.testing.assert_close(grey * backbone.in_scale + backbone.in_shift, (mean - 0.5) / 0.5)


def _cfg(name: str = "resnet_test", **optim: float) -> object:
    return build_config({"model": {"name": name}, "optim": {"lr": 1e-3, **optim}})


def test_learning_rate_groups() -> None:
    model = build_model("resnet_test", 13, 64, scoring="cosine")
    opt = build_optimizer(model, _cfg(backbone_lr=1e-4, head_lr=1e-2))
    groups = {g["name"]: g for g in opt.param_groups}
    assert (groups["backbone"]["lr"], groups["head"]["lr"]) == (1e-4, 1e-2)
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in groups["backbone"]["params"]} == backbone_ids
    head_ids = {id(p) for p in groups["head"]["params"]}
    assert id(model.scorer.log_scale) in head_ids and head_ids | backbone_ids == {id(p) for p in model.parameters()}
    opt = build_optimizer(model, _cfg())  # both None: optim.lr everywhere
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-3]


def test_frozen_backbone() -> None:
    model = build_model("resnet_test", 13, 64)
    cfg = build_config({"model": {"name": "resnet_test", "freeze_backbone": True}, "optim": {"name": "sgd"}})
    opt = build_optimizer(model, cfg)
    assert [g["name"] for g in opt.param_groups] == ["head"]
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.train()
    assert model.head.training and not any(m.training for m in model.backbone.modules())
    bn = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    loss = model.loss(model(torch.randn(4, 3, 64, 64)), {"target": torch.arange(4)}, _att())["total"]
    loss.backward()
    torch.testing.assert_close(bn.running_mean, stats)  # eval-mode BatchNorm: statistics unchanged
    assert all(p.grad is None for p in model.backbone.parameters())


def test_freeze_needs_a_backbone() -> None:
    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Linear(2, 2)

    cfg = build_config({"model": {"name": "duet_test", "freeze_backbone": True}})  # its family declares no split
    with pytest.raises(UserError, match="no backbone to freeze"):
        build_optimizer(Plain(), cfg)
    opt = build_optimizer(Plain(), _cfg(backbone_lr=1e-4))  # no split: one group at optim.lr (and a warning)
    assert [g["lr"] for g in opt.param_groups] == [1e-3]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "options", "epochs"),
    [
        ("resnet_test", {}, 6),
        ("resnet_test", {"head": "attention"}, 6),
        ("resnet_test", {"scoring": "cosine", "attr_weight": 1.0}, 6),
        ("vit_test", {"patch_size": 16}, 20),
        ("vit_test", {"patch_size": 16, "head": "attention"}, 20),
        ("deit_test", {"patch_size": 16}, 20),
    ],
    ids=["cnn-pooled", "cnn-region-attention", "cnn-cosine+attr-regression", "vit-cls", "vit-patch-attention", "deit"],
)
def test_model_learns_zero_shot(name, options, epochs, one_thread, synth_root, tmp_path):
    cfg = {
        "model": {"name": name, "options": options},
        "data": {"name": "synth", "root": str(synth_root), "image_size": 64},
        "train": {"epochs": epochs, "seed": 0, "checkpoint": False, "num_threads": one_thread},
        "optim": {"lr": 3e-3 if name == "resnet_test" else 2.5e-3},
    }
    summary = run_trial(cfg, tmp_path / name)
    best = summary["best_by_val"]
    chance = 1 / 8  # 8 unseen classes
    assert best["test"]["czsl"] >= 3 * chance, best
    assert best["val"]["czsl"] >= 3 * (1 / 6), best  # 6 val classes
    assert best["test"]["h"] > 0.15, best
