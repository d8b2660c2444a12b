"""The shared model surface (DESIGN.md §2): ``forward``, ``class_scores``, ``loss``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ZslModel(nn.Module):
    """An image → semantic-vector model scored against class attribute vectors.

    Subclasses implement ``forward(images [B, 3, H, W]) -> {"attr": [B, A], ...}``. The default scoring is the
    dot product with the class attribute matrix and the default loss is cross-entropy over the seen classes.
    """

    def class_scores(self, out: dict[str, torch.Tensor], class_attributes: torch.Tensor) -> torch.Tensor:
        """``out["attr"]`` [B, A] · ``class_attributes`` [C, A]ᵀ → scores [B, C]."""
        return out["attr"] @ class_attributes.t()

    def loss(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], class_attributes_seen: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Cross-entropy over seen classes; ``batch["target"]`` [B] indexes rows of ``class_attributes_seen``."""
        ce = F.cross_entropy(self.class_scores(out, class_attributes_seen), batch["target"])
        return {"total": ce, "ce": ce}
