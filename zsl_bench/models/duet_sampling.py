"""DUET's random choices (docs/model-maths.md#duet-training-step): the attribute to mask, the dropped attributes, and
the contrastive pairs.

Everything works on the *seen* classes (rows of ``ClassStats``) and draws from a ``torch.Generator``:

* :func:`choose_masked`: among the attributes a class has, one drawn ∝ min-max-scaled tf-idf (1 / number of seen
  classes having it), so rare attributes are masked more often;
* :func:`drop_attributes`: every other present attribute is dropped with probability ``rate``; :func:`prune` then
  drops more until the prompt fits the token budget (the target is always kept);
* :func:`choose_positive`: a *dissimilar* class that shares the masked attribute k — among the seen classes having
  k, the ⌊n/2⌋+1 with the largest Manhattan distance to the anchor, one drawn ∝ distance;
* :func:`choose_negatives`: *similar* classes with a conflicting value in k's group — none of the anchor's values
  of that group ("cannot"), at least one it lacks ("need"); the ⌊n/2⌋+1 nearest, two drawn ∝ 1/distance without
  replacement, two texts each (four negatives), each text targeting a random "need" value the class has. With no
  such class: the nearest classes lacking k, targeting one of their values of k's group (else any of theirs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ClassStats:
    """Statistics of the seen classes that the sampling uses.

    Attributes:
        binary: [S, A] bool binary attributes of the seen classes.
        deal: [S, A] seen class attributes min-max scaled globally to [0, 1] (DUET's ``attribute_deal``).
        manh: [S, S] squared Manhattan distance of ``deal`` rows, 1 on the diagonal.
        rarity: [A] min-max-scaled tf-idf (1 / #seen classes having the attribute; 0 where none has it).
        group_of: [A] long group index of each attribute.
    """

    binary: torch.Tensor
    deal: torch.Tensor
    manh: torch.Tensor
    rarity: torch.Tensor
    group_of: torch.Tensor


def class_stats(
    att_seen: torch.Tensor, binary_seen: torch.Tensor, group_of: torch.Tensor, bonus: torch.Tensor | None = None
) -> ClassStats:
    """:class:`ClassStats` from the seen classes' attributes [S, A], binary attributes [S, A] and groups [A].

    ``bonus`` [A] (quirk ``tfidf_bonus``) is added to every attribute's count of seen classes before the tf-idf.
    """
    att = att_seen.detach().float().cpu()
    lo, hi = att.min(), att.max()
    deal = (att - lo) / (hi - lo) if hi > lo else torch.zeros_like(att)
    manh = torch.cdist(deal, deal, p=1.0) ** 2
    manh.fill_diagonal_(1.0)
    binary = binary_seen.detach().bool().cpu()
    count = binary.sum(0).float()
    if bonus is not None:
        count = count + bonus.float().cpu()
    tfidf = torch.where(count > 0, 1.0 / count.clamp_min(1.0), torch.zeros_like(count))
    used = count > 0
    rarity = torch.zeros_like(tfidf)
    if used.any():
        t = tfidf[used]
        span = t.max() - t.min()
        rarity[used] = (t - t.min()) / span if span > 0 else torch.ones_like(t)
    return ClassStats(binary, deal, manh, rarity, group_of.long().cpu())


def _draw(weights: torch.Tensor, gen: torch.Generator, n: int = 1) -> list[int]:
    """``n`` indices ∝ ``weights`` without replacement (uniform over the positive-support fallback)."""
    w = weights.double().clamp_min(0.0)
    if not torch.isfinite(w).all() or w.sum() <= 0:
        w = torch.ones_like(w)
    n = min(n, int((w > 0).sum()))
    return torch.multinomial(w, n, replacement=False, generator=gen).tolist()


def present(stats: ClassStats, row: int) -> list[int]:
    """The attribute indices seen class ``row`` has."""
    return stats.binary[row].nonzero().flatten().tolist()


def choose_masked(stats: ClassStats, row: int, gen: torch.Generator, own_scale: bool = False) -> int:
    """The attribute of class ``row`` to mask, drawn ∝ rarity among its attributes; -1 when it has none.

    ``own_scale`` (quirk ``class_tfidf``): the tf-idf min-max scaled over the class's own attributes, as the official
    ``prepare_original_sample`` does, so its most common attribute has probability 0 (uniform when all are equal).
    """
    have = present(stats, row)
    if not have:
        return -1
    weights = stats.rarity[have]  # an increasing affine map of the tf-idf: the same min-max scaling of a subset
    if own_scale:
        span = weights.max() - weights.min()
        weights = (weights - weights.min()) / span if span > 0 else torch.zeros_like(weights)
    return have[_draw(weights, gen)[0]]


def has_negatives(stats: ClassStats, anchor: int, k: int) -> bool:
    """Whether a seen class other than ``anchor`` has none of the anchor's values of k's group and one it lacks
    (the negatives of :func:`choose_negatives` before its fallback)."""
    group = (stats.group_of == stats.group_of[k]).nonzero().flatten()
    have = stats.binary[anchor, group]
    ok = ~stats.binary[:, group[have]].any(1) & stats.binary[:, group[~have]].any(1)
    ok[anchor] = False
    return bool(ok.any())


def choose_masked_redrawn(
    stats: ClassStats, row: int, gen: torch.Generator, own_scale: bool = False, tries: int = 3
) -> int:
    """Quirk ``mask_redraw``: the masked attribute drawn again (up to ``tries`` draws in all) while it leaves no
    negative class (:func:`has_negatives`), as the official ``prepare_original_sample`` loop; the last draw stays."""
    k = choose_masked(stats, row, gen, own_scale)
    for _ in range(tries - 1):
        if k < 0 or has_negatives(stats, row, k):
            break
        k = choose_masked(stats, row, gen, own_scale)
    return k


def drop_attributes(attrs: list[int], keep: int, rate: float, gen: torch.Generator) -> list[int]:
    """``attrs`` with each entry other than ``keep`` dropped independently with probability ``rate``."""
    if rate <= 0:
        return list(attrs)
    u = torch.rand(len(attrs), generator=gen).tolist()
    return [a for a, x in zip(attrs, u, strict=True) if a == keep or x >= rate]


def prune(attrs: list[int], keep: int, costs: list[int], budget: int, gen: torch.Generator) -> list[int]:
    """Drop random entries (never ``keep``) until the summed token ``costs`` of ``attrs`` is at most ``budget``."""
    total = sum(costs[a] for a in attrs)
    if total <= budget:
        return attrs
    others = [a for a in attrs if a != keep]
    order = torch.randperm(len(others), generator=gen).tolist()
    gone = set()
    for i in order:
        if total <= budget:
            break
        gone.add(others[i])
        total -= costs[others[i]]
    return [a for a in attrs if a not in gone]


def prune_by_tfidf(
    attrs: list[int], keep: int, costs: list[int], budget: int, *, rarity: torch.Tensor, gen: torch.Generator
) -> list[int]:
    """Quirk ``tfidf_prune`` (official ``prun``): when the summed ``costs`` of ``attrs`` exceed ``budget``, rebuild
    the list from ``keep`` alone: min(30, n - 3) of the n entries of ``attrs`` are drawn without replacement ∝
    ``rarity`` [A] min-max scaled over ``attrs`` (the commonest is never drawn), and added in the drawn order
    (``keep`` skipped) until the cost reaches ``budget`` — the last one added may pass it. Returned in the order of
    ``attrs``."""
    if sum(costs[a] for a in attrs) <= budget:
        return attrs
    chosen = {keep} if keep in attrs else set()
    total = sum(costs[a] for a in chosen)
    weights = rarity[attrs]
    span = weights.max() - weights.min()
    weights = (weights - weights.min()) / span if span > 0 else torch.zeros_like(weights)
    size = max(0, min(30, len(attrs) - 3))
    for i in _draw(weights, gen, size) if size else []:
        if attrs[i] == keep:
            continue
        chosen.add(attrs[i])
        total += costs[attrs[i]]
        if total >= budget:
            break
    return [a for a in attrs if a in chosen]


def choose_positive(
    stats: ClassStats, anchor: int, k: int, gen: torch.Generator, with_anchor: bool = False
) -> int | None:
    """A seen class (row) other than ``anchor`` having attribute ``k``, far from the anchor; None if none has k.

    ``with_anchor`` (quirk ``anchor_positive``): the anchor's own class is a candidate too, as in the official
    ``prepare_positive_sample``: it counts in n before the top ⌊n/2⌋+1 are kept (its distance is 1, the diagonal
    of ``manh``), and with n = 1 it is the positive.
    """
    cand = stats.binary[:, k].clone()
    if not with_anchor:
        cand[anchor] = False
    rows = cand.nonzero().flatten()
    if rows.numel() == 0:
        return None
    dist = stats.manh[anchor, rows]
    top = dist.argsort(descending=True)[: rows.numel() // 2 + 1]
    return int(rows[top][_draw(dist[top], gen)[0]])


def choose_negatives(
    stats: ClassStats, anchor: int, k: int, gen: torch.Generator, official_fallback: bool = False
) -> list[tuple[int, int]]:
    """Four (class row, target attribute) negatives for anchor class ``anchor`` and masked attribute ``k``
    (see the module docstring); [] when no seen class lacks ``k``.

    ``official_fallback`` (quirk ``mask_redraw``): [] when no class has a conflicting value in k's group. The
    official ``prepare_original_sample`` empties its lists of the anchor's values of k's group after the last
    failed draw, so ``prepare_negative_sample``'s fallback steps search empty sets and the anchor is skipped."""
    group = (stats.group_of == stats.group_of[k]).nonzero().flatten()
    have = stats.binary[anchor, group]
    cannot, need = group[have], group[~have]
    ok = ~stats.binary[:, cannot].any(1) & stats.binary[:, need].any(1)
    ok[anchor] = False
    targets_from = need
    if not ok.any() and official_fallback:
        return []
    if not ok.any():  # fallback: classes lacking k, targeting their values of k's group (else any value)
        ok = ~stats.binary[:, k]
        ok[anchor] = False
        targets_from = group
        if not ok.any():
            return []
    rows = ok.nonzero().flatten()
    sim = 1.0 / stats.manh[anchor, rows].clamp_min(1e-12)
    top = sim.argsort(descending=True)[: rows.numel() // 2 + 1]
    picked = [int(rows[top][i]) for i in _draw(sim[top], gen, n=2)]
    out: list[tuple[int, int]] = []
    for i in range(4):
        row = picked[i * len(picked) // 4]  # two classes: 2 texts each; one class: all four
        options = [a for a in targets_from.tolist() if stats.binary[row, a]] or present(stats, row)
        if not options:
            continue
        out.append((row, options[int(torch.randint(len(options), (1,), generator=gen))]))
    return out
