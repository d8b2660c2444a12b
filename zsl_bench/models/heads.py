"""Attribute heads and scoring for the baselines (pure torch, no transformers).

A head maps backbone features to a predicted attribute vector ``attr`` [B, A]:

* :class:`PooledHead` — one global feature per image (CNN global average pool, ViT class token) → linear
  projection. With the classes' attribute vectors this is ALE/DeViSE-style compatibility learning.
* :class:`TokenAttentionHead` — local features (CNN feature-map regions, ViT patch tokens) attended by one learnable
  prototype per attribute: each attribute looks at the regions where it is visible (APN / MSDN-style), which gives
  the baselines the "local" view that ZeroMamba's SLP has.

:class:`Scorer` turns ``attr`` and class attribute vectors into class scores: a plain dot product, or a cosine
similarity times a learnable scale.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Scoring = Literal["dot", "cosine"]


class PooledHead(nn.Module):
    """Global features [B, D] → attributes [B, A] (a linear projection; optional dropout before it)."""

    def __init__(self, dim: int, num_attributes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, num_attributes)

    def forward(self, pooled: torch.Tensor, tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``pooled`` [B, D] (``tokens`` unused) → {"attr": [B, A]}."""
        return {"attr": self.proj(self.drop(pooled))}


class TokenAttentionHead(nn.Module):
    """Attribute prototypes attending over local features.

    For tokens x [B, N, D] (N regions or patches): keys k = W_k x [B, N, K]; attribute a attends with weights
    α_a = softmax_N(p_a · k / √K) [B, A, N] over the tokens; its attended feature v_a = Σ_n α_{a,n} x_n [B, A, D]
    is read out by its own linear map, attr_a = w_a · v_a + b_a.
    """

    def __init__(self, dim: int, num_attributes: int, key_dim: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.key = nn.Linear(dim, key_dim)
        self.prototypes = nn.Parameter(torch.randn(num_attributes, key_dim) / math.sqrt(key_dim))
        self.drop = nn.Dropout(dropout)
        self.readout = nn.Parameter(torch.empty(num_attributes, dim))
        self.bias = nn.Parameter(torch.zeros(num_attributes))
        nn.init.uniform_(self.readout, -1 / math.sqrt(dim), 1 / math.sqrt(dim))  # as nn.Linear(dim, 1) each

    def forward(self, pooled: torch.Tensor | None, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """``tokens`` [B, N, D] (``pooled`` unused) → {"attr": [B, A], "attention": [B, A, N]}."""
        keys = self.key(tokens)  # [B, N, K]
        logits = torch.einsum("ak,bnk->ban", self.prototypes, keys) / math.sqrt(keys.shape[-1])
        attention = logits.softmax(dim=-1)  # [B, A, N]
        attended = torch.einsum("ban,bnd->bad", attention, self.drop(tokens))  # [B, A, D]
        attr = torch.einsum("bad,ad->ba", attended, self.readout) + self.bias
        return {"attr": attr, "attention": attention}


class Scorer(nn.Module):
    """Class scores from predicted and class attribute vectors.

    ``dot``: attr [B, A] · att [C, A]ᵀ. ``cosine``: s · cos(attr, att_c) with a learnable scale s > 0 (stored as
    log s, initialised to ``scale``).
    """

    def __init__(self, scoring: Scoring = "dot", scale: float = 10.0) -> None:
        super().__init__()
        if scoring not in ("dot", "cosine"):
            raise ValueError(f"scoring must be 'dot' or 'cosine', not {scoring!r}")
        self.scoring = scoring
        if scoring == "cosine":
            self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))

    def forward(self, attr: torch.Tensor, class_attributes: torch.Tensor) -> torch.Tensor:
        """attr [B, A], class_attributes [C, A] → scores [B, C]."""
        if self.scoring == "dot":
            return attr @ class_attributes.t()
        return self.log_scale.exp() * F.normalize(attr, dim=-1) @ F.normalize(class_attributes, dim=-1).t()

    def regression_target(self, attr: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction, target) pairs [B, A] for attribute regression: raw for ``dot``, unit-norm for ``cosine``."""
        if self.scoring == "dot":
            return attr, target
        return F.normalize(attr, dim=-1), F.normalize(target, dim=-1)
