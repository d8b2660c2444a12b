"""The shared model surface (docs/architecture.md#the-model-surface): ``forward``, ``class_scores``, ``loss``,
``training_loss``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# (rows of ``seen_classes`` [K] long, pool "train" | "all") -> augmented images [K, 3, H, W] on the model's device
ImageSampler = Callable[[torch.Tensor, str], torch.Tensor]


@dataclass
class TrainContext:
    """What the engine tells a model about the current training step beyond its batch.

    ``class_attributes`` [C, A] holds every class of the dataset (row = class id). ``seen_classes`` [S] are the
    class ids trained on, in the order ``batch["target"]`` indexes. ``unseen_classes`` [U] are the class ids the
    current stage evaluates as unseen (the validation classes while searching, test-unseen in the final stage);
    a model may use their *attributes* (DUET's self-calibration), never their images. ``sample_images(rows, pool)``
    draws one training image for each seen-class row (pool ``"train"``: the stage's training images; ``"all"``:
    every image of that class in the dataset, test-seen included, as DUET's official code does). It is None when
    the source holds no images (feature datasets).
    """

    class_attributes: torch.Tensor
    seen_classes: torch.Tensor
    unseen_classes: torch.Tensor
    epoch: int
    generator: torch.Generator
    sample_images: ImageSampler | None = None

    @property
    def seen_attributes(self) -> torch.Tensor:
        """[S, A]: the rows of ``class_attributes`` that ``batch["target"]`` indexes."""
        return self.class_attributes[self.seen_classes]


class ZslModel(nn.Module):
    """An image → semantic-vector model scored against class attribute vectors.

    Subclasses implement ``forward(images [B, 3, H, W]) -> {"attr": [B, A], ...}``. The default scoring is the
    dot product with the class attribute matrix and the default loss is cross-entropy over the seen classes.
    Models whose training step needs more than ``loss(forward(images))`` (DUET's masked texts and contrastive
    pairs) override ``training_loss``. Models that want their own optimiser groups override ``param_groups``.
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

    def training_loss(self, batch: dict[str, torch.Tensor], ctx: TrainContext) -> dict[str, torch.Tensor]:
        """One training step's losses (``total`` is back-propagated): ``batch["image"]`` [B, 3, H, W] (or the
        cached backbone features a head-only model consumes), ``batch["target"]`` [B] rows of ``ctx.seen_classes``."""
        return self.loss(self(batch["image"]), batch, ctx.seen_attributes)

    def eval_after_batch(self, epoch: int, batch: int, batches: int, grad_accum: int) -> bool:
        """Asked by the training loop after micro-batch ``batch`` (1-based) of the ``batches`` of ``epoch`` (1-based;
        optimiser step every ``grad_accum``): True switches the model to eval mode (dropout off) for the rest of the
        epoch, as a reference recipe that evaluates mid-epoch does. The default never does."""
        return False

    def keeps_grad_tail(self) -> bool:
        """Asked by the training loop at an epoch's start: True leaves the gradients of the micro-batches after the
        epoch's last full ``grad_accum`` group unstepped and unzeroed, so they add to the next epoch's first step
        (as a reference loop that steps only every ``grad_accum`` batches of an epoch does). The default steps on
        them at the epoch's end."""
        return False

    def provenance(self) -> dict[str, str]:
        """Where this model's starting point came from (pretrained weights, attribute embeddings…), written into
        the run's ``summary.json`` as ``model_info``. Models set ``self.info`` entries; the default is empty."""
        return {k: str(v) for k, v in getattr(self, "info", {}).items()}

    def param_groups(self) -> dict[str, list[nn.Parameter]] | None:
        """Named optimiser groups (each gets ``optim.group_lr[name]``, else ``optim.<name>_lr`` for backbone/head,
        else ``optim.lr``), or None for one group. The default splits ``backbone_parameters()`` from the rest."""
        backbone = self.backbone_parameters()
        if backbone is None:
            return None
        ids = {id(p) for p in backbone}
        return {"backbone": list(backbone), "head": [p for p in self.parameters() if id(p) not in ids]}

    # The backbone/head split. A family that declares ``backbone_split=True`` (zsl_bench.models.family) implements
    # these four, and ``model.freeze_backbone`` and the feature cache use them; the defaults say "no split".

    def backbone_parameters(self) -> list[nn.Parameter] | None:
        """The backbone's parameters, or None for a model without a backbone/head split."""
        return None

    def freeze_backbone(self) -> None:
        """Stop training the backbone (``requires_grad`` off, eval-mode norms)."""
        raise NotImplementedError(f"{type(self).__name__} has no backbone/head split")

    def forward_backbone(self, images: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """images [B, 3, H, W] → what :meth:`forward_head` consumes (a tensor or dict of [B, …] tensors)."""
        raise NotImplementedError(f"{type(self).__name__} has no backbone/head split")

    def forward_head(self, features: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The output of :meth:`forward_backbone` → ``{"attr": [B, A], …}``."""
        raise NotImplementedError(f"{type(self).__name__} has no backbone/head split")

    def backbone_state(self) -> dict[str, torch.Tensor]:
        """The tensors the backbone's outputs depend on (the feature-cache key hashes them): by default the state
        dict of the ``backbone`` submodule, else — conservatively — the whole model's."""
        backbone = self._modules.get("backbone")
        return backbone.state_dict() if isinstance(backbone, nn.Module) else self.state_dict()
