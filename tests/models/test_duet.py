"""DUET: the model surface, every loss term, the official-quirk switches, weights and offline errors, and learning.

All models here are the tiny random ``duet_test`` (64 px, in-memory tokenizer); the real-size ones are only built
by benchmarks/duet_steps.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from zsl_bench.data.datasets import read_dataset
from zsl_bench.errors import UserError
from zsl_bench.models import MODELS, build_model
from zsl_bench.models import duet as duet_module
from zsl_bench.models import duet_losses as L
from zsl_bench.models.base import TrainContext

SYNTH_TEMPLATE = "colour :  | pattern :  | size :  | shape : ."


@pytest.fixture(scope="module")
def synth(synth_root: Path):
    return read_dataset("synth", synth_root)


def _model(synth_root: Path, **options):
    torch.manual_seed(0)
    return build_model("duet_test", 13, 64, dataset="synth", data_root=str(synth_root), **options)


@dataclass
class _Ctx(TrainContext):
    """A TrainContext with the fields the model looks for with getattr (what the engine may add)."""

    attribute_info: object = None
    original_att: torch.Tensor | None = None


def _ctx(synth, seed: int = 0, calls: list | None = None, **extra) -> TrainContext:
    """The synth classes (trainval seen, test unseen), a seeded generator and a fixed image pool per seen class."""
    split = synth.split
    names = (synth.root / "trainvalclasses.txt").read_text().split()
    seen = torch.as_tensor(sorted(split.class_names.index(n) for n in names))
    att = torch.as_tensor(split.att, dtype=torch.float32)
    unseen = torch.as_tensor([c for c in range(att.shape[0]) if c not in set(seen.tolist())])
    pool = torch.randn(len(seen), 2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(seed)

    def sample(rows: torch.Tensor, which: str = "train") -> torch.Tensor:
        if calls is not None:
            calls.append(which)
        return pool[rows, torch.randint(2, (len(rows),), generator=gen)]

    cls = _Ctx if extra else TrainContext
    return cls(att, seen, unseen, epoch=1, generator=gen, sample_images=sample, **extra)


def _batch(n: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return {"image": torch.randn(n, 3, 64, 64, generator=g), "target": torch.arange(n) * 3 % 24}


# --------------------------------------------------------------------------------------------- surface


def test_registered_names() -> None:
    assert {"duet_test", "duet_deit_b", "duet_swin_b"} <= set(MODELS.names())


def test_forward_uses_the_cached_fixed_template(synth_root: Path) -> None:
    model = _model(synth_root).eval()
    assert model.template_text() == SYNTH_TEMPLATE
    out = model(torch.randn(3, 3, 64, 64))
    assert out["attr"].shape == (3, 13) and out["visual"].shape == (3, 64)
    cached = model._template
    model(torch.randn(2, 3, 64, 64))
    assert model._template is cached  # tokenised once
    tokens = model.tokenizer.convert_ids_to_tokens(cached.ids[0].tolist())
    assert tokens[:4] == ["[CLS]", "colour", ":", "|"] and tokens[-2:] == [".", "[SEP]"]
    assert model.class_scores(out, torch.randn(7, 13)).shape == (3, 7)


def test_vision_variants(synth_root: Path) -> None:
    swin = _model(synth_root, vision="swin", visual_token="cls")
    assert swin.vision.dim == 64 and swin(torch.randn(2, 3, 64, 64))["attr"].shape == (2, 13)
    deit = _model(synth_root)
    assert deit.vision.dim == 1000  # the ImageNet logits of the (tiny) classifier, as the official visual token
    assert type(deit.vision.net).__name__ == "DeiTForImageClassificationWithTeacher"  # the checkpoint's two heads
    official = _model(synth_root, official_quirks=["random_deit_head"])
    assert type(official.vision.net).__name__ == "DeiTForImageClassification"  # its head is not in the checkpoint


def test_cross_layer_ignores_padding_unless_the_quirk_is_on(synth_root: Path) -> None:
    from zsl_bench.models.duet_prompts import Prompt, encode

    for quirks, same in (([], True), (["attn_padding"], False)):
        model = _model(synth_root, official_quirks=quirks).eval()
        texts = [Prompt("colour : red | shape : ."), Prompt("colour : red, blue, green | pattern : dots | shape : .")]
        both = encode(model.tokenizer, texts, 64)
        alone = encode(model.tokenizer, texts[:1], 64)
        visual = model.visual_token(torch.randn(2, 3, 64, 64))
        with torch.no_grad():
            padded = model._cross(model._read(both), both.mask, visual)[1][0]
            unpadded = model._cross(model._read(alone), alone.mask, visual[:1])[1][0]
        assert torch.allclose(padded, unpadded, atol=1e-5) is same


def test_param_groups_partition_the_parameters(synth_root: Path) -> None:
    model = _model(synth_root)
    groups = model.param_groups()
    assert list(groups) == ["vision", "text", "head"]
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    head = {id(p) for p in groups["head"]}
    assert id(model.cross.visual_attention.att.query.weight) in head and id(model.fc_image.weight) in head


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"binarize": "avg"}, "binarize"),
        ({"official_quirks": ["double_softmax", "tripple"]}, "unknown official_quirks tripple"),
        ({"mlm_weight": -1.0}, "mlm_weight must be >= 0"),
        ({"mask_prob": 1.5}, "mask_prob must be in"),
        ({"vision": "vit"}, "vision must be"),
        ({"visual_token": "patches"}, "option 'visual_token'.*'logits' or 'cls'"),  # typed: a Literal
        ({"dataset": "synth", "data_root": "/nonexistent/synth"}, "/nonexistent/synth not found.*zsl-bench data synth"),
        ({"dataset": "awa2", "data_root": "/nonexistent/awa2"}, "awa2"),
    ],
)
def test_bad_options_are_user_errors(options: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build_model("duet_test", 13, 64, **options)


def test_full_models_validate_option_names() -> None:
    with pytest.raises(UserError, match="has no option"):
        build_model("duet_deit_b", 13, 224, pretrained="x")


# ------------------------------------------------------------------------------------------ attributes


def test_attribute_sources_and_extra_state(synth, synth_root: Path) -> None:
    generic = build_model("duet_test", 13, 64)
    assert generic.template_text() == "attributes : ."  # no names known: one generic group
    ctx = _ctx(synth)
    generic.training_loss(_batch(), ctx)  # binarises ctx.class_attributes: the synth one-hot matrix
    assert generic._attrs.binary.sum(1).tolist() == [4] * 32
    # the context's attribute info (what the engine can add) wins
    ctx2 = _ctx(synth, attribute_info=synth.attributes, original_att=torch.as_tensor(synth.split.original_att))
    generic.training_loss(_batch(), ctx2)
    assert generic.template_text() == SYNTH_TEMPLATE
    fresh = build_model("duet_test", 13, 64)
    fresh.load_state_dict(generic.state_dict())  # the prompt vocabulary travels with the weights
    assert fresh.template_text() == SYNTH_TEMPLATE


# ------------------------------------------------------------------------------------------------ losses

TERMS = {  # loss term → (options: only that weight on, the branch forced)
    "ce": {"mask_prob": 0.0},
    "attr": {"mask_prob": 0.0, "xe_weight": 0.0, "attr_weight": 1.0},
    "sc": {"mask_prob": 0.0, "xe_weight": 0.0, "sc_weight": 1.0},
    "mlm": {"mask_prob": 1.0, "xe_weight": 0.0},
    "acl": {"mask_prob": 1.0, "xe_weight": 0.0, "acl_weight": 1.0},
    "naive": {"mask_prob": 0.0, "xe_weight": 0.0, "naive_weight": 1.0},
}
ZERO = {"attr_weight": 0.0, "sc_weight": 0.0, "mlm_weight": 0.0, "acl_weight": 0.0, "naive_weight": 0.0}


@pytest.mark.parametrize("term", list(TERMS))
def test_each_loss_is_finite_and_decreases_on_a_fixed_batch(term: str, synth, synth_root: Path) -> None:
    options = {**ZERO, term + "_weight": 1.0, **TERMS[term]}
    if term == "ce":
        options.pop("ce_weight")
    model = _model(synth_root, **options)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = _batch()
    values = []
    for _ in range(8):
        losses = model.training_loss(batch, _ctx(synth, seed=3))  # same draws every step
        assert set(losses) == set(duet_module.LOSS_KEYS)
        assert all(torch.isfinite(v) for v in losses.values())
        assert losses[term] > 0
        torch.testing.assert_close(losses["total"], losses[term])  # only this term is weighted
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        values.append(float(losses[term].detach()))
    assert values[-1] < 0.9 * values[0], values


def _scored_tokens(model, synth, monkeypatch) -> tuple[torch.Tensor, torch.Tensor, int, list]:
    seen = {}
    real = L.masked_lm

    def spy(logits, labels, sample, weights, n):
        seen.update(labels=labels, sample=sample, n=n)
        return real(logits, labels, sample, weights, n)

    masks = []
    real_masked = duet_module.masked

    def spy_masked(enc, mask_id):
        ids = real_masked(enc, mask_id)
        masks.append((enc, ids))
        return ids

    monkeypatch.setattr(duet_module.L, "masked_lm", spy)
    monkeypatch.setattr(duet_module, "masked", spy_masked)
    model.training_loss(_batch(8), _ctx(synth, seed=5))
    return seen["labels"], seen["sample"], seen["n"], masks


def test_mlm_scores_only_the_masked_word_pieces(synth, synth_root: Path, monkeypatch) -> None:
    model = _model(synth_root, mask_prob=1.0, acl_weight=0.0)
    labels, sample, n, masks = _scored_tokens(model, synth, monkeypatch)
    enc, ids = masks[0]
    mask_id = model.tokenizer.mask_token_id
    assert n == 8 and len(labels) == int((ids == mask_id).sum())  # one scored position per [MASK]
    assert torch.equal(labels, enc.ids[ids == mask_id])  # targets: the unmasked word pieces
    values = set(model.tokenizer.convert_ids_to_tokens(labels.tolist()))
    assert values <= {w for v in model.builder.values for w in v.split()}  # value words only, never padding
    assert sample.tolist() == sorted(sample.tolist()) and set(sample.tolist()) == set(range(8))


def test_mlm_official_quirk_scores_every_position_padding_included(synth, synth_root: Path, monkeypatch) -> None:
    model = _model(synth_root, mask_prob=1.0, acl_weight=0.0, official_quirks=["mlm_padding"])
    labels, _, _, masks = _scored_tokens(model, synth, monkeypatch)
    enc, _ = masks[0]
    assert len(labels) == enc.ids.numel() and torch.equal(labels, enc.ids.flatten())
    assert (enc.mask == 0).any() and (labels == model.tokenizer.pad_token_id).any()


def test_contrast_image_pool_follows_the_test_pool_quirk(synth, synth_root: Path) -> None:
    for quirks, pool in (([], "train"), (["test_pool"], "all")):
        for mask_prob in (0.0, 1.0):  # paired contrast (template branch) and attribute contrast (masked branch)
            calls: list[str] = []
            model = _model(synth_root, mask_prob=mask_prob, official_quirks=quirks)
            losses = model.training_loss(_batch(), _ctx(synth, calls=calls))
            assert calls == [pool] and losses["naive" if mask_prob == 0 else "acl"] > 0


def test_masked_cls_quirk_classifies_from_the_class_texts(synth, synth_root: Path) -> None:
    a = _model(synth_root, mask_prob=1.0, acl_weight=0.0)
    b = _model(synth_root, mask_prob=1.0, acl_weight=0.0, official_quirks=["masked_cls"])
    template_ce = a.training_loss(_batch(), _ctx(synth))["ce"]
    with torch.no_grad():
        expected = L.classification(a(_batch()["image"])["attr"] @ _ctx(synth).seen_attributes.t(), _batch()["target"])
    torch.testing.assert_close(template_ce, expected)  # default: the template forward, as at test time
    assert not torch.allclose(b.training_loss(_batch(), _ctx(synth))["ce"], template_ce)


def test_loss_functions_against_hand_computations() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    y = torch.tensor([0])
    p = logits.softmax(-1)
    torch.testing.assert_close(L.classification(logits, y), -p[0, 0].log())
    torch.testing.assert_close(L.classification(logits, y, double_softmax=True), -p.softmax(-1)[0, 0].log())
    unseen = torch.tensor([False, False, True])
    q = (logits + torch.tensor([-1.0, -1.0, 1.0])).softmax(-1)
    torch.testing.assert_close(L.self_calibration(logits, unseen), -q[0, 2].log())
    # paired contrast: rows i and i + 2 are the two views of sample i; a row ignores its own class except its pair
    views = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.2, 1.0]])
    s = torch.nn.functional.normalize(views, dim=-1) @ torch.nn.functional.normalize(views, dim=-1).t()
    same = L.paired_contrast(views, torch.tensor([0, 0]), temperature=1.0)
    torch.testing.assert_close(same, torch.tensor(0.0))  # one class: only the paired view is left in each row
    keep = {0: [1, 2, 3], 1: [0, 2, 3], 2: [0, 1, 3], 3: [0, 1, 2]}  # two classes: nothing else is excluded
    pair = {0: 2, 1: 3, 2: 0, 3: 1}
    expected = torch.stack([torch.logsumexp(s[i, keep[i]], 0) - s[i, pair[i]] for i in range(4)]).mean()
    torch.testing.assert_close(L.paired_contrast(views, torch.tensor([0, 1]), temperature=1.0), expected)
    # attribute contrast: raw dot products vs cosine / temperature
    anchor, others = torch.tensor([[2.0, 0.0]]), torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])
    raw = L.attribute_contrast(anchor, others, torch.ones(1), raw_logits=True)
    torch.testing.assert_close(raw, -torch.tensor([2.0, 0.0]).log_softmax(0)[0])
    cos = L.attribute_contrast(anchor, others, torch.tensor([0.5]), temperature=0.5)
    torch.testing.assert_close(cos, -0.5 * torch.tensor([2.0, 0.0]).log_softmax(0)[0])


# ---------------------------------------------------------------------------------------- weights, offline


def test_local_directories_load(synth_root: Path, tmp_path: Path) -> None:
    donor = _model(synth_root)
    donor.vision.net.save_pretrained(tmp_path / "vision")
    donor.text.save_pretrained(tmp_path / "text")
    donor.tokenizer.save_pretrained(tmp_path / "text")
    model = _model(synth_root, vision_pretrained=str(tmp_path / "vision"), text_pretrained=str(tmp_path / "text"))
    for a, b in ((donor.vision, model.vision), (donor.text, model.text)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert model.tokenizer.get_vocab() == donor.tokenizer.get_vocab()
    with pytest.raises(UserError, match=r"vision encoder of duet_test.*not a directory"):
        _model(synth_root, vision_pretrained=str(tmp_path / "missing"))


def test_offline_hub_ids_are_one_clear_error() -> None:
    script = (
        "from zsl_bench.models import build_model\n"
        "from zsl_bench.errors import UserError\n"
        "for name, size, kw in [('duet_deit_b', 224, {'vision_pretrained': 'nobody/no-such-deit'}),\n"
        "                       ('duet_test', 64, {'text_pretrained': 'nobody/no-such-bert'})]:\n"
        "    try:\n"
        "        build_model(name, 85, size, **kw)\n"
        "    except UserError as exc:\n"
        "        print(exc)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 2, proc.stderr[-2000:]
    assert "vision encoder of duet_deit_b from 'nobody/no-such-deit'" in lines[0]
    assert "hf download facebook/deit-base-distilled-patch16-224" in lines[0]
    assert "model.options.vision_pretrained=DIR" in lines[0]
    assert "tokenizer of duet_test from 'nobody/no-such-bert'" in lines[1]
    assert "model.options.text_pretrained=DIR" in lines[1] and "HF_HUB_OFFLINE" in lines[1]


# ---------------------------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_duet_learns_zero_shot_on_synth(synth_root: Path, tmp_path: Path) -> None:
    from zsl_bench.engine import run_trial

    threads = torch.get_num_threads()
    cfg = {
        "model": {"name": "duet_test", "options": {"dataset": "synth", "data_root": str(synth_root)}},
        "data": {"name": "synth", "root": str(synth_root), "image_size": 64},
        "train": {"epochs": 12, "batch_size": 32, "seed": 0, "checkpoint": False, "num_threads": 1},
        "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
    }
    try:
        summary = run_trial(cfg, tmp_path / "duet")
    finally:
        torch.set_num_threads(threads)
    best = summary["best_by_val"]
    assert best["test"]["czsl"] >= 3 * (1 / 8), best  # 3x chance over the 8 unseen classes
    assert best["test"]["h"] > 0.05, best  # GZSL not degenerate
