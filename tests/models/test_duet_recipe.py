"""DUET's official training recipe end to end (issue 20): the mid-epoch eval-mode switch against a plain re-derivation
of the official loop's conditions, and ``official_quirks: all`` + ``eval.accuracy: per_sample`` through the engine
against a reference loop written here from the official ``model/main.py``'s description."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from zsl_bench.data.datasets import load_dataset
from zsl_bench.data.protocol import make_protocol
from zsl_bench.data.stream import batches, open_images
from zsl_bench.data.synth import SynthSpec, generate
from zsl_bench.engine import run_trial
from zsl_bench.engine.checkpoint import load
from zsl_bench.engine.loops import class_pools, image_sampler, model_input
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS, build_model, dataset_options
from zsl_bench.models.base import TrainContext
from zsl_bench.models.duet import DuetModel
from zsl_bench.models.duet_recipe import MidEpochEval, mid_epoch_trigger

# ------------------------------------------------------------------------------ the mid-epoch eval-mode trigger


def _official_eval_batches(dataset: str, epochs: int, batches: int, accum: int, first=1000, every=20, at=644):
    """(epoch from 0, batch from 1) of every batch the official loop trains in eval mode: it evaluates (and calls
    model.eval()) after batch i+1 of epoch e when ``(i+1) % accum == 0`` (else it ``continue``s before) and the
    dataset's condition holds, and calls model.train() only at the next epoch's start."""
    off = set()
    for e in range(epochs):
        evaluating = False
        for i in range(batches):
            if evaluating:
                off.add((e, i + 1))
            key = 0 if (i + 1) % accum == 0 else 1
            if (i + 1) != batches and key == 1:
                continue
            last = i + 1 == batches
            if dataset == "AWA2":
                fire = last or (e * batches + i + 1 >= first and (i + 1) % (every * accum) == 0 and key == 0)
            elif dataset == "SUN":
                fire = last or (e >= 5 and i + 1 == at)
            else:  # CUB: true division, as the official code writes it
                fire = last or (e >= 5 and i + 1 == batches / 2 / accum * accum)
            evaluating = evaluating or fire
    return off


def _our_eval_batches(trigger: MidEpochEval, epochs: int, batches: int, accum: int) -> set[tuple[int, int]]:
    """The same set from :meth:`MidEpochEval.fires` as the engine's loop asks it (epochs from 1)."""
    off = set()
    for epoch in range(1, epochs + 1):
        training = True
        for batch in range(1, batches + 1):
            if not training:
                off.add((epoch - 1, batch))
            if training and trigger.fires(epoch, batch, batches, accum):
                training = False
    return off


@pytest.mark.parametrize(
    ("dataset", "batches", "accum", "fraction"),
    [
        ("AWA2", math.ceil(23527 / 10), 5, 0.945),  # xlsa17 trainval images / official batch size
        ("SUN", math.ceil(10320 / 8), 7, 0.417),
        ("CUB", math.ceil(7057 / 7), 10, 0.0),  # 1009 batches: batches / 2 is never a batch number
    ],
)
def test_official_trigger_of_each_dataset(dataset: str, batches: int, accum: int, fraction: float) -> None:
    trigger = mid_epoch_trigger(None, dataset.lower())
    assert trigger is not None and trigger.rule == dataset.lower()
    ours = _our_eval_batches(trigger, 30, batches, accum)
    assert ours == _official_eval_batches(dataset, 30, batches, accum)
    assert round(len(ours) / (30 * batches), 3) == fraction


def test_cub_trigger_fires_on_an_even_epoch_length_and_other_parameters() -> None:
    cub = mid_epoch_trigger("cub", None)
    assert _our_eval_batches(cub, 8, 1000, 10) == _official_eval_batches("CUB", 8, 1000, 10)
    assert len(_our_eval_batches(cub, 8, 1000, 10)) == 3 * 500  # epochs 6-8 (5-7 from 0), after batch 500
    awa2 = mid_epoch_trigger("awa2:30:3", "synth")
    assert _our_eval_batches(awa2, 3, 28, 2) == _official_eval_batches("AWA2", 3, 28, 2, first=30, every=3)
    sun = mid_epoch_trigger("sun:2:12", None)
    assert sun == MidEpochEval("sun", from_epoch=2, at=12)
    assert _our_eval_batches(sun, 3, 20, 4) == {(e, b) for e in (1, 2) for b in range(13, 21)}
    assert mid_epoch_trigger(None, "synth") is None and mid_epoch_trigger("none", "awa2") is None
    for bad in ("awa2:x", "sun:1:2:3", "weekly", "cub:0"):
        with pytest.raises(UserError, match="mid_epoch_trigger"):
            mid_epoch_trigger(bad, None)


def test_the_quirk_and_its_trigger_reach_the_model(synth_root: Path) -> None:
    def build(**options):
        return build_model("duet_test", 13, 64, dataset="synth", data_root=str(synth_root), **options)

    assert build(official_quirks="all").settings.mid_epoch is None  # synth: the official code has no trigger
    model = build(official_quirks=["eval_after_mid_epoch"], mid_epoch_trigger="awa2:6:2")
    assert model.settings.mid_epoch == MidEpochEval("awa2", first=6, every=2)
    assert model.eval_after_batch(1, 8, 24, 2) and not model.eval_after_batch(1, 4, 24, 2)
    assert not build(mid_epoch_trigger="awa2:6:2").eval_after_batch(1, 8, 24, 2)  # the quirk is off
    assert build(official_quirks="grad_tail").keeps_grad_tail() and not build().keeps_grad_tail()
    with pytest.raises(UserError, match="mid_epoch_trigger"):
        build(mid_epoch_trigger="hourly")


# ------------------------------------------------------------------------------------------------ end to end

OPTIONS = {
    "official_quirks": "all",
    "mid_epoch_trigger": "awa2:6:2",  # AwA2's rule, scaled down: from micro-batch 6, every 2 x grad_accum
    "dropout": 0.1,  # so that the eval-mode switch changes the trajectory
    "hidden": 32,
    "heads": 2,
    "vision_layers": 1,
    "acl_anchors": 2,
    "acl_weight": 0.1,
    "mlm_weight": 0.1,
    "mask_prob": 0.5,
}
SEED, LR, BATCH, ACCUM, EPOCHS, GAMMA = 5, 1e-2, 3, 3, 2, 0.002  # 96 images: 32 batches, a tail of 2 per epoch


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recipe") / "synth"
    generate(root, SynthSpec(seed=3, images_per_class=5, test_seen_frac=0.2))
    return root


def _config(root: Path, threads: int) -> dict:
    return {
        "model": {"name": "duet_test", "options": OPTIONS},
        "data": {"name": "synth", "root": str(root)},
        "train": {"epochs": EPOCHS, "batch_size": BATCH, "grad_accum": ACCUM, "seed": SEED, "hflip": False},
        "train_threads": threads,
        "optim": {
            "name": "adam",
            "lr": LR,
            "weight_decay": 0.0,
            "schedule": "step",
            "step_size": 1,  # the official x0.8 every 10 epochs, every epoch here
            "lr_decay": 0.8,
            "reset_state_each_epoch": True,
        },
        "eval": {"accuracy": "per_sample", "gamma": GAMMA, "score_space": "softmax"},
        "meta": {"stage": "final"},
    }


def _reference(
    root: Path, switch: bool = True, tail: bool = True
) -> tuple[list[float], list[bool], DuetModel, list[float]]:
    """The official main.py's training loop re-derived: per epoch model.train() and a new Adam at lr x 0.8^epoch
    (0-based; step_size 1 here); per micro-batch the loss / grad_accum back-propagated, a step and zero_grad every
    grad_accum batches of the epoch and nowhere else, so the gradients of an epoch's last batches after its last
    step (the tail) add to the next epoch's first step; model.eval() after the batch where the official loop
    evaluates (AwA2's rule with first and every scaled down) until the epoch ends. ``switch=False`` leaves out the
    eval-mode switch, ``tail=False`` steps on the tail at the epoch's end instead. Batches, images and the per-step
    draws come from the same seeded streams as the engine's. Returns the per-batch losses, train mode per batch,
    the model, and the epoch means."""
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    data = load_dataset("synth", str(root))
    proto = make_protocol(data.split, data.labels, "final")
    spec = replace(MODELS.get("duet_test").transform_at(None), hflip=False)
    source = open_images(data, spec, None)
    options = dataset_options("duet_test", data.name, str(Path(data.root).resolve()), OPTIONS)
    model = build_model("duet_test", data.split.num_attributes, spec.size, **options)
    assert isinstance(model, DuetModel)
    att = torch.as_tensor(data.split.att, dtype=torch.float32)
    targets = np.searchsorted(proto.train_classes, data.labels)
    gen = torch.Generator().manual_seed(SEED)
    pools = class_pools(data.labels, proto.train_idx, proto.train_classes)
    n = math.ceil(len(proto.train_idx) / BATCH)
    assert n % ACCUM != 0  # a gradient tail every epoch (quirk grad_tail)
    losses, modes, means = [], [], []
    for epoch in range(EPOCHS):
        model.train()
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR * 0.8**epoch)
        ctx = TrainContext(
            att,
            torch.as_tensor(proto.train_classes),
            torch.as_tensor(proto.evals[0].unseen_classes),
            epoch + 1,
            gen,
            image_sampler(source, pools, spec, gen, torch.device("cpu")),
        )
        total, seen = 0.0, 0
        order = batches(source, proto.train_idx, BATCH, shuffle=True, generator=gen)
        for i, (idx, images) in enumerate(order):
            x = model_input(images, spec, True, gen, torch.device("cpu"))
            modes.append(model.training)
            loss = model.training_loss({"image": x, "target": torch.as_tensor(targets[idx])}, ctx)["total"]
            losses.append(float(loss.detach()))
            total, seen = total + losses[-1] * len(idx), seen + len(idx)
            (loss / ACCUM).backward()
            if (i + 1) % ACCUM == 0:
                optimizer.step()
                optimizer.zero_grad()
                official_eval = epoch * n + i + 1 >= 6 and (i + 1) % (2 * ACCUM) == 0
                if switch and official_eval and i + 1 != n:
                    model.eval()
        if not tail:
            optimizer.step()
            optimizer.zero_grad()
        means.append(total / seen)
    return losses, modes, model, means


def _per_sample_metrics(model: DuetModel, root: Path) -> dict[str, float]:
    """CZSL, U, S and H as the official ``--all`` computes them: correct / samples (U and S after subtracting
    gamma from the seen classes' softmax probabilities over seen ∪ unseen)."""
    data = load_dataset("synth", str(root))
    test = make_protocol(data.split, data.labels, "final").evals[0]
    spec = MODELS.get("duet_test").transform_at(None)
    att = torch.as_tensor(data.split.att, dtype=torch.float32)
    model.eval()
    idx = test.indices
    with torch.no_grad():
        images = open_images(data, spec, None).get(idx)
        raw = model.class_scores(model(model_input(images, spec, False, None, torch.device("cpu"))), att)
    y = torch.as_tensor(data.labels[idx])
    seen, unseen = torch.as_tensor(test.seen_classes), torch.as_tensor(test.unseen_classes)
    is_unseen = torch.isin(y, unseen)
    czsl = (unseen[raw[is_unseen][:, unseen].argmax(1)] == y[is_unseen]).double().mean()
    both = torch.cat([seen, unseen])
    prob = raw[:, both].softmax(1) - GAMMA * (torch.arange(len(both)) < len(seen))
    right = both[prob.argmax(1)] == y
    u, s = right[is_unseen].double().mean(), right[~is_unseen].double().mean()
    return {"czsl": float(czsl), "u": float(u), "s": float(s), "h": float(2 * u * s / (u + s)) if u + s else 0.0}


def test_official_recipe_end_to_end(small_synth: Path, tmp_path: Path, one_thread, monkeypatch) -> None:
    cfg = _config(small_synth, one_thread)
    cfg["train"]["num_threads"] = cfg.pop("train_threads")
    engine_losses, engine_modes = [], []
    original = DuetModel.training_loss

    def recording(self, batch, ctx):
        engine_modes.append(self.training)
        out = original(self, batch, ctx)
        engine_losses.append(float(out["total"].detach()))
        return out

    monkeypatch.setattr(DuetModel, "training_loss", recording)
    run_trial(cfg, tmp_path / "run")
    monkeypatch.undo()
    ref_losses, ref_modes, ref_model, ref_means = _reference(small_synth)

    assert engine_modes == ref_modes and not all(ref_modes) and any(ref_modes)  # dropout off where official
    np.testing.assert_allclose(engine_losses, ref_losses, rtol=1e-5, atol=1e-7)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([r["train_loss"] for r in records], ref_means, rtol=1e-5)
    state = load(tmp_path / "run" / "checkpoint" / "latest.pt")
    assert state is not None
    ref_state = ref_model.state_dict()
    assert state["model"].keys() == ref_state.keys()
    for name, value in ref_state.items():  # the weights, and the prompt vocabulary (extra state)
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(state["model"][name], value, rtol=1e-5, atol=1e-6)
        else:
            assert state["model"][name] == value
    final = records[-1]
    assert final["accuracy"] == "per_sample" and final["gamma"] == GAMMA
    expected = _per_sample_metrics(ref_model, small_synth)
    assert expected["u"] > 0 and expected["s"] > 0  # (the synthetic classes are balanced: per-class is the same)
    for key, value in expected.items():
        assert final[key] == pytest.approx(value, abs=1e-6), key

    # the eval-mode switch matters for this trajectory: without it the reference drifts from the engine's
    plain_losses, plain_modes, _, _ = _reference(small_synth, switch=False)
    assert all(plain_modes) and not np.allclose(plain_losses, ref_losses, rtol=1e-5, atol=1e-7)
    # and so does the gradient tail: stepping on it at each epoch's end changes the second epoch's losses
    stepped_losses, _, _, _ = _reference(small_synth, tail=False)
    n = len(ref_losses) // EPOCHS
    assert np.allclose(stepped_losses[:n], ref_losses[:n], rtol=1e-5, atol=1e-7)
    assert not np.allclose(stepped_losses[n:], ref_losses[n:], rtol=1e-5, atol=1e-7)
