"""DUET's loss terms (docs/model-maths.md#duet-training-step) as pure functions, the weights applied by the model;
and the heads behind
them (:class:`MlmHead`, :func:`span_mean`).

The official code's quirks are options here (``official`` arguments), the correct form is the default:
``double_softmax`` (cross-entropy applied to probabilities), ``mlm_padding`` (the masked-LM loss averaged over
every token position, padding included, instead of the masked ones) and ``raw_logits`` (attribute-level contrast
by plain dot products, no normalisation or temperature).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def classification(logits: torch.Tensor, target: torch.Tensor, double_softmax: bool = False) -> torch.Tensor:
    """Cross-entropy of class scores ``logits`` [B, S] against seen-class rows ``target`` [B].

    ``double_softmax``: the official code's CE over ``softmax(logits)`` (probabilities taken as logits again).
    """
    if double_softmax:
        logits = logits.softmax(-1)
    return F.cross_entropy(logits, target)


def attribute_regression(pred: torch.Tensor, target_att: torch.Tensor) -> torch.Tensor:
    """MSE between predicted attributes [B, A] and the target classes' attribute vectors [B, A]."""
    return F.mse_loss(pred, target_att)


def self_calibration(scores: torch.Tensor, unseen: torch.Tensor) -> torch.Tensor:
    """−log mean_b Σ_{u ∈ unseen} softmax(scores_b + m)_u with m = +1 on unseen and −1 on seen classes.

    Args:
        scores: [B, K] scores over seen and unseen classes.
        unseen: [K] bool, True on the unseen columns.
    """
    margin = unseen.float() * 2.0 - 1.0
    prob = (scores + margin).softmax(-1)
    mass = prob[:, unseen].sum(-1).mean()
    return -torch.log(mass.clamp_min(1e-12))


def masked_lm(
    logits: torch.Tensor, labels: torch.Tensor, sample: torch.Tensor, weights: torch.Tensor, num_samples: int
) -> torch.Tensor:
    """Weighted masked-attribute-modelling loss: mean over samples of ``weights`` x mean token cross-entropy.

    Args:
        logits: [T, V] predictions at the T scored token positions (the masked word pieces; every position,
            padding included, for the official ``mlm_padding`` form).
        labels: [T] the ids of the unmasked texts there.
        sample: [T] long, the sample each position belongs to.
        weights: [N] per-sample weights (DUET: 3 x the masked attribute's scaled class value).
        num_samples: N (samples without a scored position contribute 0).
    """
    ce = F.cross_entropy(logits, labels, reduction="none")  # [T]
    total = torch.zeros(num_samples, dtype=ce.dtype, device=ce.device).index_add(0, sample, ce)
    count = torch.zeros(num_samples, dtype=ce.dtype, device=ce.device).index_add(0, sample, torch.ones_like(ce))
    return (weights * total / count.clamp_min(1.0)).mean()


def attribute_contrast(
    anchor: torch.Tensor,
    others: torch.Tensor,
    weights: torch.Tensor,
    temperature: float = 0.05,
    raw_logits: bool = False,
) -> torch.Tensor:
    """Attribute-level contrast: each anchor against its positive (column 0) and negatives.

    Args:
        anchor: [N, D] anchor embeddings.
        others: [N, 1 + M, D] the positive then M negatives of each anchor.
        weights: [N] per-anchor weights.
        temperature: divides the cosine similarities (ignored with ``raw_logits``).
        raw_logits: the official plain dot products (no normalisation, no temperature).

    Returns:
        mean over anchors of weight x CE(logits, 0).
    """
    if raw_logits:
        logits = torch.einsum("nd,nmd->nm", anchor, others)
    else:
        logits = torch.einsum("nd,nmd->nm", F.normalize(anchor, dim=-1), F.normalize(others, dim=-1)) / temperature
    target = torch.zeros(len(anchor), dtype=torch.long, device=anchor.device)
    return (weights * F.cross_entropy(logits, target, reduction="none")).mean()


def paired_contrast(
    views: torch.Tensor, labels: torch.Tensor, temperature: float = 0.05, zero_same: bool = False
) -> torch.Tensor:
    """The template branch's InfoNCE over two views per sample (SupCon-like).

    Args:
        views: [2B, D] embeddings; rows i and i + B are the two images of sample i.
        labels: [B] class of each sample.
        temperature: divides the cosine similarities.
        zero_same: the official ``info_nce_loss`` (quirk ``paired_zero``): the other images of the same class get
            logit 0 and stay in the denominator.

    Returns:
        Mean over the 2B rows of −log p(paired view); other images of the same class are left out of the
        denominator (neither positive nor negative), the row itself too.
    """
    n = len(labels)
    z = F.normalize(views, dim=-1)
    sim = z @ z.t() / temperature  # [2B, 2B]
    lab = torch.cat([labels, labels])
    idx = torch.arange(2 * n, device=views.device)
    pair = (idx + n) % (2 * n)
    same = lab[:, None] == lab[None, :]
    keep = ~same
    keep[idx, pair] = True
    if zero_same:  # same-class logits 0 (in the denominator); only the row itself is left out
        sim = sim.masked_fill(~keep, 0.0).masked_fill(idx[:, None] == idx[None, :], float("-inf"))
    else:
        sim = sim.masked_fill(~keep, float("-inf"))
    return F.cross_entropy(sim, pair)


class MlmHead(nn.Module):
    """BERT's MLM head, untied and randomly initialised: dense H→H, GELU, LayerNorm, decoder H→V (+ bias)."""

    def __init__(self, hidden: int, vocab: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """[..., H] → [..., V]."""
        return self.decoder(self.norm(nn.functional.gelu(self.dense(states))))


def span_mean(states: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
    """Mean of states [N, L, H] over the positions span [N, L] (zeros where a row has none) → [N, H]."""
    w = span.to(states.dtype)
    return (states * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1.0)
