"""The classic feature heads: ESZSL's closed form, the ranking losses of ALE/DeViSE/SJE, and zero-shot learning on
the synthetic res101 features (CZSL well above chance)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zsl_bench.engine import run_trial
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS, build_model
from zsl_bench.models.base import TrainContext

CLASSIC = ["eszsl", "ale", "devise", "sje"]


def test_registered_with_their_tiny_names() -> None:
    assert {*CLASSIC, *(f"{m}_test" for m in CLASSIC)} <= set(MODELS.names())
    assert MODELS.get("ale_test").factory is MODELS.get("ale").factory


def _ctx(seen: torch.Tensor, epoch: int = 1) -> TrainContext:
    rows = torch.arange(seen.shape[0])
    return TrainContext(seen, rows, rows[:0], epoch, torch.Generator())


def test_eszsl_is_the_closed_form_of_the_whole_training_set() -> None:
    g = torch.Generator().manual_seed(0)
    x, seen = torch.rand(50, 6, generator=g), torch.rand(4, 3, generator=g)  # X [n, D], S [z, A]
    target = torch.randint(4, (50,), generator=g)
    model = build_model("eszsl", 3, 0, feature_dim=6, alpha=0.5, gamma=-1.0)
    model.train()
    for epoch in (1, 2):  # a second epoch restarts the sums: the same solution
        for chunk in torch.arange(50).split(16):
            out = model.training_loss({"image": x[chunk], "target": target[chunk]}, _ctx(seen, epoch))
            assert out["total"].requires_grad and set(out) == {"total", "mse"}
        model.eval()
        attr = model(x)["attr"]
        model.train()
    xd, sd = x.double(), seen.double()
    y = 2.0 * torch.nn.functional.one_hot(target, 4).double() - 1.0
    v = (
        torch.linalg.inv(xd.T @ xd + 10**0.5 * torch.eye(6))
        @ xd.T
        @ y
        @ sd
        @ torch.linalg.inv(sd.T @ sd + 10**-1.0 * torch.eye(3))
    )
    torch.testing.assert_close(attr, (xd @ v).float(), rtol=1e-4, atol=1e-5)


def test_ranking_losses_by_hand() -> None:
    att = torch.eye(4)  # scores = attr itself
    out = {"attr": torch.tensor([[2.0, 1.5, 0.5, 1.8], [3.0, 0.0, 0.0, 0.0]])}
    batch = {"target": torch.tensor([0, 0])}
    # sample 0 violators with margin 1: class 1 (0.5), 2 (-0.5 → 0), 3 (0.8); sample 1: none
    sums = {
        "devise": (0.5 + 0.8) / 2,
        "sje": 0.8 / 2,
        "ale": (1.0 + 1 / 2) / 2 * (0.5 + 0.8) / 2,  # β_2 / 2 with β_2 = 1 + 1/2
    }
    for name, expected in sums.items():
        model = build_model(name, 4, 0, feature_dim=4, margin=1.0)
        loss = model.loss(out, batch, att)
        torch.testing.assert_close(loss["total"], torch.tensor(expected))


def test_inputs_are_checked() -> None:
    model = build_model("ale", 3, 0, feature_dim=8)
    with pytest.raises(UserError, match=r"features are 5-d.*feature_dim=5"):
        model(torch.rand(2, 5))
    with pytest.raises(UserError, match="takes feature vectors"):
        model(torch.rand(2, 3, 8, 8))


@pytest.mark.parametrize("name", CLASSIC)
def test_learns_zero_shot_on_synthetic_features(name: str, synth_res101: Path, tmp_path: Path) -> None:
    cfg = {
        "model": {"name": name},
        "data": {"name": "synth", "root": str(synth_res101), "features": "res101"},
        "train": {"epochs": 1 if name == "eszsl" else 4, "seed": 0, "num_threads": 1, "checkpoint": False},
        "optim": {"lr": 1e-3},
    }
    best = run_trial(cfg, tmp_path / name)["best_by_val"]
    assert best["test"]["czsl"] >= 3 * (1 / 8), best  # 8 unseen classes
    assert best["val"]["czsl"] >= 3 * (1 / 6), best  # 6 validation classes
    assert best["test"]["h"] > 0.3, best


def test_wrong_input_kind_is_a_user_error(synth_root: Path, synth_res101: Path, tmp_path: Path) -> None:
    classic_on_images = {"model": {"name": "sje"}, "data": {"name": "synth", "root": str(synth_root)}}
    with pytest.raises(UserError, match=r"trains on feature vectors; set data\.features=res101"):
        run_trial(classic_on_images, tmp_path / "a")
    cnn_on_features = {"model": {"name": "resnet_test"}, "data": {"name": "synth", "root": str(synth_res101)}}
    cnn_on_features["data"]["features"] = "res101"
    with pytest.raises(UserError, match="takes images"):
        run_trial(cnn_on_features, tmp_path / "b")
