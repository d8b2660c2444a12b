"""DUET's official-code quirks of issue 20, each against a small independent re-derivation from the official code's
description (plain loops over hand matrices, replayed with the same generator state)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from zsl_bench.models import build_model
from zsl_bench.models import duet as duet_module
from zsl_bench.models import duet_losses as L
from zsl_bench.models import duet_recipe as R
from zsl_bench.models import duet_sampling as S
from zsl_bench.models.duet_prompts import AWA2_GROUPS, official_awa2_template

# 5 seen classes x 6 attributes in 2 groups ({0, 1, 2}, {3, 4, 5}); attribute counts 4, 2, 1, 2, 3, 1
BINARY = torch.tensor(
    [
        [1, 1, 0, 1, 0, 0],
        [1, 0, 1, 0, 1, 0],
        [1, 1, 0, 0, 1, 0],
        [1, 0, 0, 1, 0, 1],
        [0, 0, 0, 0, 1, 0],
    ],
    dtype=torch.bool,
)
GROUP = torch.tensor([0, 0, 0, 1, 1, 1])
ATT = torch.tensor(  # distinct Manhattan distances between classes
    [
        [0.9, 0.7, 0.0, 0.6, 0.1, 0.0],
        [0.8, 0.1, 0.5, 0.0, 0.9, 0.2],
        [0.7, 0.6, 0.1, 0.2, 0.4, 0.0],
        [0.95, 0.0, 0.3, 0.8, 0.0, 0.7],
        [0.0, 0.2, 0.1, 0.1, 0.6, 0.3],
    ]
)


def _stats() -> S.ClassStats:
    return S.class_stats(ATT, BINARY, GROUP)


def _replay(weights: list[float], gen: torch.Generator) -> int:
    """One draw ∝ ``weights`` as numpy's ``random.choice(p=w / w.sum())``, with torch's generator."""
    return int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=gen))


def _class_tfidf_weights(row: int) -> tuple[list[int], list[float]]:
    """Official: tf-idf (1 / seen classes having it) of the class's attributes, min-max scaled over those."""
    have = [a for a in range(6) if BINARY[row, a]]
    tfidf = [1.0 / sum(bool(BINARY[c, a]) for c in range(5)) for a in have]
    lo, hi = min(tfidf), max(tfidf)
    return have, [(t - lo) / (hi - lo) for t in tfidf]


def test_class_tfidf_draws_with_the_class_own_scaling() -> None:
    stats = _stats()
    for row in range(4):
        have, weights = _class_tfidf_weights(row)
        assert min(weights) == 0.0  # the class's most common attribute is never masked
        for seed in range(20):
            got = S.choose_masked(stats, row, torch.Generator().manual_seed(seed), own_scale=True)
            assert got == have[_replay(weights, torch.Generator().manual_seed(seed))]


def _has_negatives(row: int, k: int) -> bool:
    """Official ``prepare_original_sample``: a class with none of the anchor's values of k's group, one it lacks."""
    group = [a for a in range(6) if GROUP[a] == GROUP[k]]
    cannot = [a for a in group if BINARY[row, a]]
    need = [a for a in group if not BINARY[row, a]]
    return any(not any(BINARY[c, a] for a in cannot) and any(BINARY[c, a] for a in need) for c in range(5))


def test_mask_redraw_tries_three_times_until_negatives_exist() -> None:
    stats = _stats()
    assert not _has_negatives(0, 0) and _has_negatives(0, 3)  # the redraw matters for class 0
    for row in range(5):
        have, weights = _class_tfidf_weights(row) if row < 4 else ([4], [1.0])
        for seed in range(20):
            gen = torch.Generator().manual_seed(seed)
            k = -1
            for _ in range(3):
                k = have[_replay(weights, gen)] if len(have) > 1 else have[0]
                if _has_negatives(row, k):
                    break
            got = S.choose_masked_redrawn(stats, row, torch.Generator().manual_seed(seed), own_scale=True)
            assert got == k, (row, seed)


def test_anchor_positive_counts_the_anchor_class() -> None:
    stats = _stats()
    deal = (ATT - ATT.min()) / (ATT.max() - ATT.min())
    for anchor, k in ((0, 0), (0, 1), (3, 5), (1, 2)):
        cand = [c for c in range(5) if BINARY[c, k]]  # the anchor included, its distance 1
        dist = {c: 1.0 if c == anchor else float((deal[anchor] - deal[c]).abs().sum() ** 2) for c in cand}
        top = sorted(cand, key=lambda c: -dist[c])[: len(cand) // 2 + 1]
        for seed in range(10):
            expected = top[_replay([dist[c] for c in top], torch.Generator().manual_seed(seed))]
            got = S.choose_positive(stats, anchor, k, torch.Generator().manual_seed(seed), with_anchor=True)
            assert got == expected
    # attribute 5 belongs to class 3 alone, attribute 2 to class 1 alone: the anchor is its own positive
    assert S.choose_positive(stats, 3, 5, torch.Generator(), with_anchor=True) == 3
    assert S.choose_positive(stats, 3, 5, torch.Generator()) is None


def test_paired_zero_keeps_same_class_logits_at_zero() -> None:
    views = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.9, 0.1], [0.5, 0.9], [0.1, 1.0]])
    labels = torch.tensor([0, 0, 1])  # rows i and i + 3 are the two views of sample i
    t = 0.5
    z = torch.nn.functional.normalize(views, dim=-1)
    lab = torch.cat([labels, labels])
    total = 0.0
    for i in range(6):  # official info_nce_loss: [positive, negatives x different-class mask] / temperature
        pair = (i + 3) % 6
        logits = [float(z[i] @ z[pair]) / t]
        logits += [0.0 if lab[i] == lab[j] else float(z[i] @ z[j]) / t for j in range(6) if j not in (i, pair)]
        total -= logits[0] - float(torch.logsumexp(torch.tensor(logits), 0))
    got = L.paired_contrast(views, labels, t, zero_same=True)
    torch.testing.assert_close(got, torch.tensor(total / 6))
    assert not torch.allclose(got, L.paired_contrast(views, labels, t))


def test_awa2_template_is_the_official_string() -> None:
    official = (
        "color :  | pattern :  | texture :  | shape :  | has part :  | behavior:  | character:  | limb:  | "
        "diet:  | role:  | habitat:  | habit: ."
    )
    assert official_awa2_template(AWA2_GROUPS) == official
    assert official_awa2_template(["colour", "pattern"]) is None


def _model(synth_root: Path, **options):
    torch.manual_seed(0)
    return build_model("duet_test", 13, 64, dataset="synth", data_root=str(synth_root), **options)


def test_awa2_template_quirk_leaves_other_datasets_alone(synth_root: Path) -> None:
    assert _model(synth_root, official_quirks=["awa2_template"]).template_text() == _model(synth_root).template_text()


def test_default_init_gives_the_cross_layer_pytorch_defaults(synth_root: Path) -> None:
    ours = _model(synth_root).cross.lang_output.dense.requires_grad_(False)
    official = _model(synth_root, official_quirks=["default_init"]).cross.lang_output.dense.requires_grad_(False)
    fan_in = ours.weight.shape[1]  # 4 x 64
    assert torch.count_nonzero(ours.bias) == 0 and abs(float(ours.weight.std()) - 0.02) < 0.003
    bound = fan_in**-0.5  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases likewise
    assert float(official.weight.abs().max()) <= bound and abs(float(official.weight.std()) - bound / 3**0.5) < 0.003
    assert torch.count_nonzero(official.bias) == official.bias.numel() and float(official.bias.abs().max()) <= bound


def test_prune_170_caps_the_token_budget(synth_root: Path) -> None:
    base = _model(synth_root, max_length=250)
    capped = _model(synth_root, max_length=250, official_quirks=["prune_170"])
    assert base._budget - capped._budget == 250 - 170
    assert _model(synth_root, official_quirks=["prune_170"])._budget == _model(synth_root)._budget  # 150 < 170


def test_all_selects_every_quirk(synth_root: Path) -> None:
    model = _model(synth_root, official_quirks=["all"])
    assert model.settings.quirks == frozenset(duet_module.QUIRKS)
    assert _model(synth_root, official_quirks="all").settings.quirks == frozenset(duet_module.QUIRKS)


def test_a_step_runs_with_every_quirk(synth_root: Path) -> None:
    from tests.models.test_duet import _batch, _ctx
    from zsl_bench.data.datasets import read_dataset

    synth = read_dataset("synth", synth_root)
    for mask_prob in (0.0, 1.0):  # template branch (paired contrast) and masked branch
        model = _model(synth_root, official_quirks="all", mask_prob=mask_prob, acl_weight=1.0)
        losses = model.training_loss(_batch(), _ctx(synth))
        assert all(torch.isfinite(v) for v in losses.values())
        assert losses["naive" if mask_prob == 0 else "mlm"] > 0


# ------------------------------------------------------------------ mask_redraw: the official negative fallback


def _official_negatives(row: int, k: int) -> list[int]:
    """The candidate negative classes of official ``prepare_negative_sample`` after ``prepare_original_sample``'s
    redraw loop left k: its lists of the anchor's values of k's group ("cannot") and the others ("need") are kept
    when k has negatives and emptied after a failed last draw. Step 1: no "cannot" value, some "need" value; steps 2
    and 3: classes lacking k with one of the anchor's kept / dropped values of the group (both subsets of
    "cannot"). The top ⌊n/2⌋+1 by 1 / distance are returned (empty: the anchor gets no contrast)."""
    group = [a for a in range(6) if GROUP[a] == GROUP[k]]
    cannot = [a for a in group if BINARY[row, a]]
    need = [a for a in group if not BINARY[row, a]]
    if not _has_negatives(row, k):
        cannot, need = [], []  # reset after the third failed draw
    dist = _stats().manh[row]
    step1 = [c for c in range(5) if not any(BINARY[c, a] for a in cannot) and any(BINARY[c, a] for a in need)]
    kept_or_dropped = [a for a in cannot if a != k]  # attribute_notmiss_index ∪ attribute_miss_index ⊆ this
    step23 = [c for c in range(5) if any(BINARY[c, a] for a in kept_or_dropped) and not BINARY[c, k]]
    found = step1 or step23
    return sorted(found, key=lambda c: -1.0 / float(dist[c]))[: len(found) // 2 + 1]


def test_mask_redraw_takes_the_official_negative_fallback() -> None:
    stats = _stats()
    skipped = drawn = 0
    for row in range(5):
        for seed in range(20):
            k = S.choose_masked_redrawn(stats, row, torch.Generator().manual_seed(seed), own_scale=True)
            expected = _official_negatives(row, k)
            got = S.choose_negatives(stats, row, k, torch.Generator().manual_seed(seed), official_fallback=True)
            if not expected:
                skipped += 1
                assert got == []
                assert len(S.choose_negatives(stats, row, k, torch.Generator().manual_seed(seed))) == 4  # ours
            else:
                drawn += 1
                assert len(got) == 4 and {c for c, _ in got} <= set(expected), (row, k, got, expected)
                assert all(BINARY[c, a] and GROUP[a] == GROUP[k] and not BINARY[row, a] for c, a in got)
    assert skipped and drawn  # both paths are exercised by the hand matrix


# ---------------------------------------------------------------------------- tfidf_bonus and tfidf_prune


def test_tfidf_bonus_adds_three_classes_to_awa2_groups() -> None:
    names = ["diet", "diet", "diet", "colour", "colour", "colour"]  # GROUP 0 is a bonus group, GROUP 1 is not
    bonus = R.tfidf_bonus(names)
    assert bonus.tolist() == [3.0, 3.0, 3.0, 0.0, 0.0, 0.0]
    assert R.tfidf_bonus(list(AWA2_GROUPS)).tolist() == [0, 0, 0, 0, 0, 3, 0, 0, 3, 3, 3, 0]  # per group here
    stats = S.class_stats(ATT, BINARY, GROUP, bonus)
    for row in range(4):
        have = [a for a in range(6) if BINARY[row, a]]
        times = [sum(bool(BINARY[c, a]) for c in range(5)) + (3 if names[a] == "diet" else 0) for a in have]
        tfidf = [1.0 / t for t in times]  # official main.py: frequency = 1 / (times + 3 for the bonus groups)
        lo, hi = min(tfidf), max(tfidf)
        weights = [(t - lo) / (hi - lo) for t in tfidf]
        for seed in range(20):
            got = S.choose_masked(stats, row, torch.Generator().manual_seed(seed), own_scale=True)
            assert got == have[_replay(weights, torch.Generator().manual_seed(seed))], (row, seed)
    # row 0 (attributes 0, 1, 3): without the bonus 1 and 3 tie; with it, 3 (no bonus) is the rarest
    plain = S.class_stats(ATT, BINARY, GROUP)
    assert plain.rarity[1] == plain.rarity[3] and stats.rarity[3] > stats.rarity[1]


def test_tfidf_bonus_reaches_the_model(synth_root: Path) -> None:
    from tests.models.test_duet import _ctx
    from zsl_bench.data.datasets import read_dataset

    synth = read_dataset("synth", synth_root)
    model = _model(synth_root, official_quirks=["tfidf_bonus"])
    groups = ["diet" if i % 2 else g for i, g in enumerate(model.builder.groups)]
    info = SimpleNamespace(groups=groups, values=model.builder.values)
    ctx = _ctx(synth, attribute_info=info)
    stats = model._sync(ctx).stats
    binary = stats.binary
    count = binary.sum(0).float() + torch.tensor([3.0 if g == "diet" else 0.0 for g in groups])
    used = count > 0
    tfidf = 1.0 / count[used]
    torch.testing.assert_close(stats.rarity[used], (tfidf - tfidf.min()) / (tfidf.max() - tfidf.min()))


def _official_prun(attrs, keep, costs, budget, rarity, gen) -> list[int]:
    """Official ``prun`` in our token units: start from ``keep``; draw min(30, n - 3) of the class's present
    attributes without replacement ∝ their tf-idf min-max scaled over them; add them in that order (``keep``
    skipped), stopping once the length reaches the budget."""
    if sum(costs[a] for a in attrs) <= budget:
        return attrs
    t = [float(rarity[a]) for a in attrs]
    w = torch.tensor([(x - min(t)) / (max(t) - min(t)) for x in t], dtype=torch.float64)
    order = torch.multinomial(w, min(30, len(attrs) - 3), replacement=False, generator=gen).tolist()
    out, length = {keep}, costs[keep]
    for i in order:
        if attrs[i] != keep:
            out.add(attrs[i])
            length += costs[attrs[i]]
            if length >= budget:
                break
    return [a for a in attrs if a in out]


def test_tfidf_prune_rebuilds_texts_by_tfidf() -> None:
    rarity = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0])
    costs = [3, 2, 4, 2, 3, 5, 2, 3]
    attrs = [0, 1, 2, 3, 4, 5, 6, 7]
    differs = 0
    for budget, keep in ((12, 2), (9, 0), (15, 7), (30, 3)):
        for seed in range(15):
            got = S.prune_by_tfidf(attrs, keep, costs, budget, rarity=rarity, gen=torch.Generator().manual_seed(seed))
            ref = _official_prun(attrs, keep, costs, budget, rarity, torch.Generator().manual_seed(seed))
            assert got == ref, (budget, keep, seed)
            fits = budget >= sum(costs)  # 24: nothing to prune
            assert got == attrs if fits else keep in got and (0 not in got or keep == 0)  # 0: the commonest
            differs += got != S.prune(attrs, keep, costs, budget, torch.Generator().manual_seed(seed))
    assert differs  # not the random pruning


def test_tfidf_prune_reaches_the_model(synth_root: Path) -> None:
    model = _model(synth_root, official_quirks=["tfidf_prune"], max_length=18, attribute_miss=0.0)
    from tests.models.test_duet import _ctx
    from zsl_bench.data.datasets import read_dataset

    stats = model._sync(_ctx(read_dataset("synth", synth_root))).stats
    row = int(stats.binary.sum(1).argmax())
    have = S.present(stats, row)
    assert sum(model._costs[a] for a in have) > model._budget  # pruning binds at max_length 18
    differs = 0
    for seed in range(10):
        prompt = model._draw_text(stats, row, have[0], torch.Generator().manual_seed(seed))
        gen = torch.Generator().manual_seed(seed)
        kept = S.drop_attributes(have, have[0], model.settings.attribute_miss, gen)
        kept = _official_prun(kept, have[0], model._costs, model._budget, stats.rarity, gen)
        assert prompt.text == model.builder.text(kept, have[0]).text
        plain = S.prune(have, have[0], model._costs, model._budget, torch.Generator().manual_seed(seed))
        differs += prompt.text != model.builder.text(plain, have[0]).text
    assert len(have) >= 4 and differs  # tf-idf draws (n - 3 >= 1 of them), not the random pruning


def test_mask_redraw_reaches_the_negatives(synth_root: Path, monkeypatch) -> None:
    from tests.models.test_duet import _batch, _ctx
    from zsl_bench.data.datasets import read_dataset

    synth = read_dataset("synth", synth_root)
    flags: list[bool] = []
    choose = S.choose_negatives

    def recording(stats, anchor, k, gen, official_fallback=False):
        flags.append(official_fallback)
        return choose(stats, anchor, k, gen, official_fallback)

    monkeypatch.setattr(S, "choose_negatives", recording)
    for quirks, expected in (([], False), (["mask_redraw"], True)):
        flags.clear()
        model = _model(synth_root, official_quirks=quirks, mask_prob=1.0, acl_weight=1.0)
        model.training_loss(_batch(), _ctx(synth))
        assert flags and set(flags) == {expected}
