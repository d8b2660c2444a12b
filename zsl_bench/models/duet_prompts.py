"""DUET's prompts: binary class attributes, the per-class texts, the fixed template and their tokenisation.

A class text lists, group by group in the order of first appearance, the value words of the attributes the class
has (docs/model-maths.md#duet-prompts)::

    bill shape : curved, dagger | wing color : blue | ... | wing pattern : striped.

Every group is written, an empty one as ``group : `` (so a text and the template share their structure); the
*fixed template* is the text of a class with no attribute, ``bill shape :  | wing color :  | ... | wing pattern : .``.
A :class:`Prompt` remembers the character span of one *target* attribute's value, which the tokeniser's offsets map
to word pieces: the masked attribute (one ``[MASK]`` per word piece) or a contrastive pair's attribute.

Binarisation (the xlsa17 files carry only continuous attributes, DUET's own ``binary_att`` is not public):
:func:`binarize` thresholds ``original_att`` [C, A] by a rule string, default ``mean`` (the global mean of the
matrix; on AwA2 this reproduces ``predicate-matrix-binary.txt`` exactly, see docs/duet.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from zsl_bench.errors import UserError

BINARIZE_RULES = (
    "mean",
    "mean:attribute",
    "mean:class",
    "median",
    "median:attribute",
    "median:class",
    "threshold:<x>",
    "topk:<k>",
)


def check_binarize_rule(rule: str) -> None:
    """Raise ``UserError`` unless ``rule`` is one of :data:`BINARIZE_RULES` (``<x>`` a float, ``<k>`` an int ≥ 1)."""
    head, _, arg = rule.partition(":")
    ok = rule in BINARIZE_RULES[:6]
    if head == "threshold" and arg:
        try:
            float(arg)
            ok = True
        except ValueError:
            ok = False
    if head == "topk" and arg:
        ok = arg.isdigit() and int(arg) >= 1
    if not ok:
        raise UserError(f"model option binarize={rule!r} is not a rule; use one of {', '.join(BINARIZE_RULES)}")


def binarize(values: torch.Tensor, rule: str = "mean") -> torch.Tensor:
    """Binary class attributes from continuous ones.

    Args:
        values: [C, A] continuous class attributes (xlsa17 ``original_att`` transposed, or ``att``).
        rule: ``mean`` / ``median``: above the statistic of the whole matrix; ``mean:attribute`` /
            ``median:attribute``: above the statistic of the attribute's column (over classes);
            ``mean:class`` / ``median:class``: above the statistic of the class's row; ``threshold:<x>``: above x;
            ``topk:<k>``: the k largest attributes of each class (ties broken by index).

    Returns:
        [C, A] bool.
    """
    check_binarize_rule(rule)
    v = values.float()
    head, _, arg = rule.partition(":")
    if head == "threshold":
        return v > float(arg)
    if head == "topk":
        k = min(int(arg), v.shape[1])
        out = torch.zeros_like(v, dtype=torch.bool)
        return out.scatter(1, v.topk(k, dim=1).indices, True)
    stat = torch.mean if head == "mean" else _median
    if arg == "attribute":
        return v > stat(v, 0)[None, :]
    if arg == "class":
        return v > stat(v, 1)[:, None]
    return v > stat(v.flatten(), 0)


def _median(v: torch.Tensor, dim: int) -> torch.Tensor:
    return v.quantile(0.5, dim=dim)


@dataclass(frozen=True)
class Prompt:
    """A class text and the character span ``[start, end)`` of its target attribute's value words (or None)."""

    text: str
    target: tuple[int, int] | None = None


class PromptBuilder:
    """Writes class texts from attribute indices (see the module docstring).

    Args:
        groups: [A] group phrase of every attribute.
        values: [A] value words of every attribute.
    """

    def __init__(self, groups: Sequence[str], values: Sequence[str]) -> None:
        if len(groups) != len(values):
            raise ValueError(f"{len(groups)} groups for {len(values)} values")
        self.groups = list(groups)
        self.values = [" ".join(v.split()) for v in values]
        self.group_names = list(dict.fromkeys(self.groups))
        index = {g: i for i, g in enumerate(self.group_names)}
        self.group_of = [index[g] for g in self.groups]  # [A] group index of each attribute
        self.members: list[list[int]] = [[] for _ in self.group_names]
        for a, g in enumerate(self.group_of):
            self.members[g].append(a)

    @property
    def num_attributes(self) -> int:
        return len(self.values)

    def template(self) -> str:
        """The fixed test-time text: every group with an empty value."""
        return self.text([]).text

    def text(self, present: Sequence[int], target: int | None = None) -> Prompt:
        """The text listing the attributes ``present`` (indices, any order); ``target`` must be one of them."""
        chosen = set(present)
        if target is not None and target not in chosen:
            raise ValueError(f"target attribute {target} is not among the present ones")
        parts: list[str] = []
        span = None
        pos = 0
        for g, name in enumerate(self.group_names):
            if g:
                parts.append(" | ")
                pos += 3
            head = f"{name} : "
            parts.append(head)
            pos += len(head)
            first = True
            for a in self.members[g]:
                if a not in chosen:
                    continue
                if not first:
                    parts.append(", ")
                    pos += 2
                first = False
                if a == target:
                    span = (pos, pos + len(self.values[a]))
                parts.append(self.values[a])
                pos += len(self.values[a])
        parts.append(".")
        return Prompt("".join(parts), span)

    def state(self) -> dict[str, Any]:
        """What rebuilds the builder (checkpoint extra state): ``{"groups": [...], "values": [...]}``."""
        return {"groups": list(self.groups), "values": list(self.values)}


AWA2_GROUPS = (
    "color", "pattern", "texture", "shape", "has part", "behaviour", "character", "limb", "habit", "diet", "role",
    "habitat",
)  # fmt: skip
"""AwA2's attribute groups in the order of its predicates (our template's order)."""


def official_awa2_template(group_names: Sequence[str]) -> str | None:
    """The official AwA2 test-time template (quirk ``awa2_template``, official ``model/main.py``): the last groups
    ordered diet | role | habitat | habit, "behavior" spelt without u, and no space before the colon from it on;
    None for other groups than :data:`AWA2_GROUPS`."""
    if tuple(group_names) != AWA2_GROUPS:
        return None
    spaced = [f"{g} : " for g in AWA2_GROUPS[:5]]
    tight = [f"{g}: " for g in ("behavior", "character", "limb", "diet", "role", "habitat", "habit")]
    return " | ".join(spaced + tight) + "."


def generic_builder(num_attributes: int) -> PromptBuilder:
    """The prompts of a model that knows no attribute names: one group ``attributes``, values ``a1`` … ``aA``."""
    return PromptBuilder(["attributes"] * num_attributes, [f"a{i + 1}" for i in range(num_attributes)])


@dataclass
class Encoded:
    """A tokenised batch of prompts.

    Attributes:
        ids: [N, L] long token ids (padded to the longest, truncated at ``max_length``).
        mask: [N, L] long attention mask (1 = token, 0 = padding).
        target: [N, L] bool, the word pieces of each prompt's target value (all False when it has none or it
            was truncated away).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor

    def to(self, device: torch.device) -> Encoded:
        return Encoded(self.ids.to(device), self.mask.to(device), self.target.to(device))


def encode(tokenizer: Any, prompts: Sequence[Prompt], max_length: int) -> Encoded:
    """Tokenise ``prompts`` (a transformers fast tokenizer: padding, truncation, special tokens, offsets)."""
    enc = tokenizer(
        [p.text for p in prompts],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    offsets = enc["offset_mapping"]  # [N, L, 2]
    starts, ends = offsets[..., 0], offsets[..., 1]
    lo = torch.tensor([p.target[0] if p.target else -1 for p in prompts])[:, None]
    hi = torch.tensor([p.target[1] if p.target else -1 for p in prompts])[:, None]
    target = (ends > starts) & (starts >= lo) & (ends <= hi)
    return Encoded(enc["input_ids"], enc["attention_mask"], target)


def masked(enc: Encoded, mask_token_id: int) -> torch.Tensor:
    """[N, L] ids with every target word piece replaced by ``mask_token_id`` (one [MASK] per piece)."""
    return enc.ids.masked_fill(enc.target, mask_token_id)
