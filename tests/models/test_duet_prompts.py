"""DUET's prompts, binarisation, tokenisation targets and the sampling of masked attributes and contrastive pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from zsl_bench.data.attributes import attribute_info
from zsl_bench.data.xlsa17 import read_att_splits
from zsl_bench.errors import UserError
from zsl_bench.models import duet_sampling as S
from zsl_bench.models.duet_encoders import local_tokenizer
from zsl_bench.models.duet_prompts import PromptBuilder, binarize, check_binarize_rule, encode, masked


def _builder(root: Path, dataset: str, num: int) -> PromptBuilder:
    info = attribute_info(dataset, root, num)
    assert info is not None
    return PromptBuilder(info.groups, info.values)


# ------------------------------------------------------------------------------------------------ prompts


def test_cub_prompts_from_the_real_attribute_names(shared_data: Path) -> None:
    b = _builder(shared_data / "CUB", "cub", 312)
    template = b.template()
    assert len(b.group_names) == 28
    assert template.startswith("bill shape :  | wing color :  | upperparts color :  | ")
    assert template.endswith(" | wing pattern : .") and template.count(" | ") == 27
    # attributes 0 (has_bill_shape::curved_(up_or_down)), 4 (::hooked_seabird), 6 (::all-purpose), 9 (wing blue)
    p = b.text([9, 4, 0], target=4)
    assert p.text.startswith("bill shape : curved, hooked seabird | wing color : blue | upperparts color :  | ")
    assert p.text[p.target[0] : p.target[1]] == "hooked seabird"
    assert b.text([6]).text.startswith("bill shape : all purpose | wing color :  | ")
    assert b.text([]).text == template and b.text([]).target is None
    with pytest.raises(ValueError, match="not among"):
        b.text([0], target=5)


def test_awa2_prompts_from_the_real_predicates(shared_data: Path) -> None:
    b = _builder(shared_data / "AWA2", "awa2", 85)
    assert b.group_names[:3] == ["color", "pattern", "texture"] and len(b.group_names) == 12
    names = (shared_data / "AWA2" / "predicates.txt").read_text().split()[1::2]
    idx = {n: i for i, n in enumerate(names)}
    p = b.text([idx["stripes"], idx["black"], idx["white"], idx["meat"], idx["hunter"]], target=idx["meat"])
    assert p.text == (
        "color : black, white | pattern : stripes | texture :  | shape :  | has part :  | behaviour :  | "
        "character :  | limb :  | habit :  | diet : meat | role : hunter | habitat : ."
    )
    assert p.text[p.target[0] : p.target[1]] == "meat"


# ------------------------------------------------------------------------------------------- binarisation


def test_binarize_rules_on_a_hand_matrix() -> None:
    v = torch.tensor([[0.0, 10.0, 2.0], [4.0, 1.0, 3.0]])  # global mean 10/3
    assert binarize(v).tolist() == [[False, True, False], [True, False, False]]
    assert binarize(v, "mean:attribute").tolist() == [[False, True, False], [True, False, True]]
    assert binarize(v, "mean:class").tolist() == [[False, True, False], [True, False, True]]
    assert binarize(v, "median").tolist() == [[False, True, False], [True, False, True]]  # median 2.5
    assert binarize(v, "median:class").tolist() == [[False, True, False], [True, False, False]]
    assert binarize(v, "threshold:2.5").tolist() == [[False, True, False], [True, False, True]]
    assert binarize(v, "topk:1").tolist() == [[False, True, False], [True, False, False]]
    assert binarize(v, "topk:2").sum(1).tolist() == [2, 2]
    for bad in ("average", "threshold:", "threshold:x", "topk:0", "topk:1.5", "mean:row"):
        with pytest.raises(UserError, match="binarize"):
            check_binarize_rule(bad)


def test_default_binarisation_reproduces_the_awa2_binary_matrix(shared_data: Path) -> None:
    split = read_att_splits(shared_data / "AWA2" / "att_splits.mat")
    reference = np.loadtxt(shared_data / "AWA2" / "predicate-matrix-binary.txt").astype(bool)
    ours = binarize(torch.as_tensor(split.original_att)).numpy()
    assert (ours == reference).mean() == 1.0  # 100 % of the 50 x 85 cells
    per_attribute = binarize(torch.as_tensor(split.original_att), "mean:attribute").numpy()
    assert 0.85 < (per_attribute == reference).mean() < 0.95  # the per-column mean is a worse rule (89.7 %)


# ------------------------------------------------------------------------------------------- tokenisation


def test_target_word_pieces_are_masked_one_per_piece() -> None:
    b = PromptBuilder(["colour", "colour", "shape"], ["red", "greenish blue", "circle"])
    tok = local_tokenizer(["colour", "red", "shape", "circle", "greenish"])  # "blue" only as letters
    prompts = [b.text([0, 1, 2], target=1), b.text([2], target=2), b.text([0])]
    enc = encode(tok, prompts, max_length=64)
    pieces = tok.convert_ids_to_tokens(enc.ids[0][enc.target[0]].tolist())
    assert pieces == ["greenish", "b", "##l", "##u", "##e"]
    assert tok.convert_ids_to_tokens(enc.ids[1][enc.target[1]].tolist()) == ["circle"]
    assert not enc.target[2].any() and enc.mask[2].sum() < enc.mask[0].sum()  # padded, nothing targeted
    ids = masked(enc, tok.mask_token_id)
    assert (ids == tok.mask_token_id).sum(1).tolist() == [5, 1, 0]
    assert torch.equal(ids[~enc.target], enc.ids[~enc.target])
    short = encode(tok, prompts[:1], max_length=6)  # the target is truncated away: no target positions
    assert short.ids.shape[1] == 6 and not short.target.any()


# ---------------------------------------------------------------------------------------------- sampling

# Five seen classes, two groups: colour (attributes 0 red, 1 green, 2 blue) and shape (3 circle, 4 square).
BINARY = torch.tensor(
    [
        [1, 0, 0, 1, 0],  # 0 anchor: red circle
        [1, 0, 0, 0, 1],  # 1 red square (shares red, differs in shape)
        [0, 1, 0, 1, 0],  # 2 green circle (conflicting colour, similar)
        [0, 0, 1, 0, 1],  # 3 blue square (conflicting colour, dissimilar)
        [1, 1, 0, 1, 0],  # 4 red+green circle: has red, so never a colour negative
    ],
    dtype=torch.bool,
)
GROUPS = torch.tensor([0, 0, 0, 1, 1])


def _stats() -> S.ClassStats:
    return S.class_stats(BINARY.float(), BINARY, GROUPS)


def test_class_statistics() -> None:
    st = _stats()
    assert st.manh[0, 0] == 1 and st.manh[0, 1] == 4.0 and st.manh[0, 3] == 16.0  # (L1 distance)² of 0/1 rows
    # rarity: 1 / #classes having it, min-max scaled: red (3 classes) 0, blue (1 class) 1
    assert st.rarity[0] == 0 and st.rarity[2] == 1 and 0 < st.rarity[1] < 1


def test_masked_attribute_is_drawn_by_rarity() -> None:
    st = _stats()
    gen = torch.Generator().manual_seed(0)
    # counts: red 3, green 2, blue 1, circle 3, square 2 → scaled rarity 0, 0.25, 1, 0, 0.25
    assert {S.choose_masked(st, 1, gen) for _ in range(100)} == {4}  # red square: square (red has weight 0)
    assert {S.choose_masked(st, 4, gen) for _ in range(100)} == {1}  # red+green circle: green
    draws = [S.choose_masked(st, 0, gen) for _ in range(200)]
    assert set(draws) == {0, 3}  # red circle: both at the minimum weight → uniform
    empty = S.class_stats(torch.zeros(1, 5), torch.zeros(1, 5, dtype=torch.bool), GROUPS)
    assert S.choose_masked(empty, 0, gen) == -1


def test_positive_is_a_dissimilar_class_sharing_the_masked_attribute() -> None:
    st = _stats()
    gen = torch.Generator().manual_seed(0)
    # red (0): classes 1 (distance 4) and 4 (distance 1); the top ⌊2/2⌋+1 = 2, drawn ∝ distance
    picks = [S.choose_positive(st, 0, 0, gen) for _ in range(300)]
    assert set(picks) == {1, 4} and picks.count(1) > 2 * picks.count(4)
    assert S.choose_positive(st, 3, 2, gen) is None  # nobody else is blue


def test_negatives_are_similar_classes_with_a_conflicting_value_in_the_group() -> None:
    st = _stats()
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        negs = S.choose_negatives(st, 0, 0, gen)  # anchor red circle, masked red
        assert len(negs) == 4
        assert {r for r, _ in negs} <= {2, 3}  # not 1 or 4: they are red ("cannot")
        assert all(a in (1, 2) and BINARY[r, a] for r, a in negs)  # the target is a "need" value they have
        assert [r for r, _ in negs][:2] == [negs[0][0]] * 2  # two texts per class
    # masked circle (3): shape negatives must be square-only classes: 1 and 3, nearest first
    assert {r for r, _ in S.choose_negatives(st, 0, 3, gen)} <= {1, 3}
    # single candidate: it supplies all four texts
    one = S.class_stats(BINARY[:3].float(), BINARY[:3], GROUPS)
    assert [r for r, _ in S.choose_negatives(one, 0, 0, gen)] == [2, 2, 2, 2]


def test_negative_fallback_and_no_negative() -> None:
    binary = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 1], [1, 0, 0, 1]], dtype=torch.bool)
    st = S.class_stats(binary.float(), binary, torch.tensor([0, 0, 1, 1]))
    gen = torch.Generator().manual_seed(0)
    # masked 2 (group 1): no class lacks 0 and has 1 → fallback is classes lacking 2 (1 and 2), targeting group 1
    negs = S.choose_negatives(st, 0, 2, gen)
    assert len(negs) == 4 and all(r in (1, 2) and a == 3 for r, a in negs)
    assert S.choose_negatives(st, 0, 0, gen) == []  # every class has attribute 0


def test_drop_and_prune_keep_the_target() -> None:
    gen = torch.Generator().manual_seed(0)
    attrs = list(range(20))
    kept = S.drop_attributes(attrs, 7, 0.5, gen)
    assert 7 in kept and 3 < len(kept) < 17
    assert S.drop_attributes(attrs, 7, 0.0, gen) == attrs
    costs = [3] * 20
    pruned = S.prune(attrs, 7, costs, budget=12, gen=gen)
    assert 7 in pruned and len(pruned) == 4 and pruned == sorted(pruned)
    assert S.prune(attrs, 7, costs, budget=60, gen=gen) == attrs
