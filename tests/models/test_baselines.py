"""The baselines must *learn*: trained briefly on the synthetic data, they recognise unseen classes far above chance."""

import pytest
import torch

from zsl_bench.engine import run_trial
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS, build_model


@pytest.mark.parametrize("name", ["resnet_test", "vit_test"])
def test_shapes_and_scores(name):
    model = build_model(name, num_attributes=13, image_size=64)
    out = model(torch.randn(4, 3, 64, 64))
    assert out["attr"].shape == (4, 13)
    att = torch.nn.functional.normalize(torch.rand(7, 13), dim=1)
    assert model.class_scores(out, att).shape == (4, 7)
    loss = model.loss(out, {"target": torch.tensor([0, 1, 2, 3])}, att)
    loss["total"].backward()
    assert all(p.grad is not None for p in model.head.parameters())


def test_unknown_option_is_a_user_error():
    with pytest.raises(UserError, match=r"has no option.*wdith.*width"):
        build_model("resnet_test", 13, 64, wdith=8)


def test_registry_lists_both():
    assert {"resnet_test", "vit_test"} <= set(MODELS.names())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "epochs", "lr"),
    [("resnet_test", 8, 3e-3), ("vit_test", 12, 2.5e-3)],
)
def test_model_learns_zero_shot(name, epochs, lr, synth_root, tmp_path):
    cfg = {
        "model": {"name": name},
        "data": {"name": "synth", "root": str(synth_root)},
        "train": {"epochs": epochs, "seed": 0},
        "optim": {"lr": lr},
    }
    summary = run_trial(cfg, tmp_path / name)
    best = summary["best_by_val"]
    chance = 1 / 8  # 8 unseen classes
    assert best["test"]["czsl"] >= 3 * chance, best
    assert best["val"]["czsl"] >= 3 * (1 / 6), best  # 6 val classes
    assert best["test"]["h"] > 0.15, best
