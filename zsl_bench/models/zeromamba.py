"""ZeroMamba (AAAI'25): a Vision-Mamba backbone with local (SLP), global (GRL) and fused (SeF) semantic heads.

Model (docs/model-maths.md#zeromamba; shapes for a batch B, A attributes, backbone channels C, R = h·w regions, K
backbone classes):

* backbone → the last stage's region map F [B, C, h, w] (VMamba: before the classifier norm; Vim: the final
  normalised patch tokens laid out on their grid) and the pretrained ImageNet logits g [B, K] (VMamba: LN2d →
  average pool → Linear; Vim: the class token's head);
* **SLP**, :class:`SemanticLocalProjection`: attribute vectors V [A, d] (trainable, initialised to the row-normalised
  attribute embeddings), W1, W2 [d, C] ~ N(0, 1). Fr = F with each region's channel vector L2-normalised,
  M = softmax over regions of (Vn W1) Fr → [B, A, R], P = M Frᵀ → [B, A, C], f_loc = Σ_C (Vn W2) ⊙ P → [B, A];
* **GRL**, :class:`GlobalRepresentation`: f_glob = Linear(K → A, no bias)(g);
* **SeF**, :class:`SemanticFusion`: f = f_glob + l2norm(Linear(A → 512) → ReLU → Linear(512 → A))(f_loc), both
  linears bias-free;
* class scores s = f · attᵀ; loss = CE over the seen classes + ``l1_weight`` · mean |f − att[y]|.

The registered factories (``zeromamba_vmamba_s``, ``zeromamba_vmamba_b``, ``zeromamba_vim_s``, ``zeromamba_test``)
and their options are in :mod:`zsl_bench.models.zeromamba_factories`, which builds :class:`ZeroMamba` and loads
the backbone's official checkpoint with :func:`load_backbone_checkpoint`.

Optimiser groups (:meth:`ZeroMamba.param_groups`): ``backbone`` = backbone + SLP (official lr 1e-3), ``head`` = the
GRL linear (1e-3), ``sef`` = the fusion MLP (1e-4). ``model.freeze_backbone`` freezes the backbone only (the SLP
keeps learning). ``forward_backbone`` / ``forward_head`` split the network where a feature cache can sit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zsl_bench.errors import UserError
from zsl_bench.layers.checkpoints import read_state_dict
from zsl_bench.layers.selective_scan import ScanRecord
from zsl_bench.models.base import ZslModel
from zsl_bench.models.vim import VisionMamba
from zsl_bench.models.vmamba import VSSM

log = logging.getLogger(__name__)

__all__ = [
    "GlobalRepresentation",
    "SemanticFusion",
    "SemanticLocalProjection",
    "ZeroMamba",
    "load_backbone_checkpoint",
]

RANDOM_INIT = ("none", "random", "scratch")
WEIGHTS_HINT = {
    "zeromamba_vmamba_s": "vssm_small_0229_ckpt_epoch_222.pth from the VMamba GitHub release (tag #v2cls)",
    "zeromamba_vmamba_b": "vssm_base_0229_ckpt_epoch_237.pth from the VMamba GitHub release (tag #v2cls)",
    "zeromamba_vim_s": "vim_s_midclstok_80p5acc.pth from the hustvl/Vim release on Hugging Face",
}


# --------------------------------------------------------------------------------------------------- heads


class SemanticLocalProjection(nn.Module):
    """SLP: attribute-guided attention over the backbone's regions.

    Parameters: ``V`` [A, d] (initialised to the row-normalised ``embeddings``), ``W1``, ``W2`` [d, C] ~ N(0, 1).
    """

    def __init__(self, embeddings: torch.Tensor, channels: int) -> None:
        super().__init__()
        dim = embeddings.shape[1]
        self.V = nn.Parameter(F.normalize(embeddings.detach().float().clone(), dim=1))
        self.W1 = nn.Parameter(torch.randn(dim, channels))
        self.W2 = nn.Parameter(torch.randn(dim, channels))

    def forward(self, regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``regions`` [B, C, h, w] → (f_loc [B, A], attention M [B, A, h·w], summing to 1 over regions)."""
        fr = F.normalize(regions.flatten(2), dim=1)  # [B, C, R], unit channel vector per region
        vn = F.normalize(self.V, dim=1)  # [A, d]
        logits = torch.einsum("ac,bcr->bar", vn @ self.W1, fr)
        attention = logits.softmax(dim=-1)  # [B, A, R]
        attended = torch.einsum("bar,bcr->bac", attention, fr)  # P [B, A, C]
        local = torch.einsum("ac,bac->ba", vn @ self.W2, attended)
        return local, attention


class GlobalRepresentation(nn.Module):
    """GRL: the backbone's ImageNet logits g [B, K] → f_glob = Linear(K → A, no bias)(g) [B, A]."""

    def __init__(self, backbone_classes: int, num_attributes: int) -> None:
        super().__init__()
        self.proj = nn.Linear(backbone_classes, num_attributes, bias=False)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.proj(logits)


class SemanticFusion(nn.Module):
    """SeF: f_loc [B, A] → l2norm(Linear(A → hidden) → ReLU → Linear(hidden → A))(f_loc) [B, A] (bias-free)."""

    def __init__(self, num_attributes: int, hidden: int = 512) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(num_attributes, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, num_attributes, bias=False)
        )

    def forward(self, local: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(local), dim=-1)


# -------------------------------------------------------------------------------------------- backbones


def _vmamba_outputs(backbone: VSSM, images: torch.Tensor) -> dict[str, torch.Tensor]:
    regions = backbone.forward_features(images)  # before the classifier norm
    return {"regions": regions, "logits": backbone.forward_head(regions)}


def _vim_outputs(backbone: VisionMamba, images: torch.Tensor) -> dict[str, torch.Tensor]:
    tokens = backbone.forward_tokens(images)  # [B, M+1, D], class token in the middle
    mid = backbone.cls_position(tokens.shape[1] - 1)
    patches = torch.cat([tokens[:, :mid], tokens[:, mid + 1 :]], dim=1)
    proj = backbone.patch_embed.proj
    grid = [(images.shape[i + 2] - proj.kernel_size[i]) // proj.stride[i] + 1 for i in range(2)]
    regions = patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)
    return {"regions": regions, "logits": backbone.head(tokens[:, mid])}


def _backbone_adapter(backbone: nn.Module) -> tuple[Callable[..., dict[str, torch.Tensor]], int, int]:
    """(outputs function, channels C, classes K) of a supported backbone."""
    if isinstance(backbone, VSSM):
        return _vmamba_outputs, backbone.num_features, backbone.classifier.head.out_features
    if isinstance(backbone, VisionMamba):
        return _vim_outputs, backbone.num_features, backbone.head.out_features
    raise TypeError(f"unsupported ZeroMamba backbone {type(backbone).__name__} (VSSM or VisionMamba)")


# ------------------------------------------------------------------------------------------------- model


class ZeroMamba(ZslModel):
    """backbone → (SLP, GRL) → SeF → ``attr`` [B, A]; see the module docstring.

    Attributes:
        embedding_source: where the SLP's initial attribute vectors came from (for the run's records).
        pretrained_source: where the backbone weights came from (``random init`` or the checkpoint path).
        info: both, as :meth:`provenance` reports them (``summary.json`` ``model_info``).

    ``forward = forward_head ∘ forward_backbone``; :data:`HEAD_OPTIONS` are the factory options that do not change
    the backbone's eval-mode outputs, so a frozen backbone's cached features serve every value of them.
    """

    HEAD_OPTIONS = ("l1_weight", "attribute_embeddings", "attribute_names", "embed_dim", "fusion_hidden", "drop_path")

    def __init__(
        self,
        backbone: nn.Module,
        embeddings: torch.Tensor,
        num_attributes: int,
        *,
        l1_weight: float = 1.0,
        fusion_hidden: int = 512,
        embedding_source: str = "given",
        pretrained_source: str = "random init",
    ) -> None:
        super().__init__()
        if l1_weight < 0:
            raise UserError(f"l1_weight must be >= 0 (got {l1_weight})")
        if fusion_hidden < 1:
            raise UserError(f"fusion_hidden must be >= 1 (got {fusion_hidden})")
        if embeddings.shape[0] != num_attributes:
            raise UserError(f"attribute embeddings have {embeddings.shape[0]} rows; the dataset has {num_attributes}")
        self._outputs, channels, classes = _backbone_adapter(backbone)
        self.backbone = backbone
        self.slp = SemanticLocalProjection(embeddings, channels)
        self.grl = GlobalRepresentation(classes, num_attributes)
        self.sef = SemanticFusion(num_attributes, fusion_hidden)
        self.l1_weight = float(l1_weight)
        self.embedding_source = embedding_source
        self.pretrained_source = pretrained_source
        self.info = {"attribute_embeddings": embedding_source, "pretrained": pretrained_source, "scan": ScanRecord()}
        self.frozen = False

    def forward_backbone(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] → {"regions": F [B, C, h, w], "logits": g [B, K]}: all the heads consume."""
        return self._outputs(self.backbone, images)

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:meth:`forward_backbone`'s dict → {"attr": f, "global": f_glob, "local": f_loc (all [B, A]),
        "attention": M [B, A, R]}."""
        local, attention = self.slp(features["regions"])
        glob = self.grl(features["logits"])
        return {"attr": glob + self.sef(local), "global": glob, "local": local, "attention": attention}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] → :meth:`forward_head` of :meth:`forward_backbone`."""
        return self.forward_head(self.forward_backbone(images))

    def loss(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], class_attributes_seen: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """{"total": ce + l1_weight·l1, "ce", "l1"}: CE of f·att[S]ᵀ against ``batch["target"]`` [B] (rows of
        ``class_attributes_seen`` [S, A]) and the mean absolute error between f and the target attributes."""
        ce = F.cross_entropy(self.class_scores(out, class_attributes_seen), batch["target"])
        l1 = F.l1_loss(out["attr"], class_attributes_seen[batch["target"]])
        total = ce + self.l1_weight * l1 if self.l1_weight > 0 else ce
        return {"total": total, "ce": ce, "l1": l1.detach()}

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The pretrained backbone only (what ``model.freeze_backbone`` freezes)."""
        return list(self.backbone.parameters())

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """{"backbone": backbone + SLP, "head": the GRL linear, "sef": the fusion MLP} (official lrs 1e-3/1e-3/1e-4)."""
        return {
            "backbone": [*self.backbone.parameters(), *self.slp.parameters()],
            "head": list(self.grl.parameters()),
            "sef": list(self.sef.parameters()),
        }

    def freeze_backbone(self) -> None:
        """No gradients for the backbone, and eval mode for it always (drop-path off)."""
        self.frozen = True
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> ZeroMamba:
        """``nn.Module.train``, except that a frozen backbone stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self


# ----------------------------------------------------------------------------------------------- weights


def load_backbone_checkpoint(
    backbone: nn.Module, pretrained: str | Path | None, model_name: str, warn_random: bool = True
) -> str:
    """Load an official checkpoint (dict key ``model``, or a bare state dict; ``weights_only``) into ``backbone``.

    Every backbone tensor must be in the file with its shape (the 1000-class head included); keys the backbone
    does not have are ignored with a warning. ``None``/``none``/``random``/``scratch`` keep the random init (a
    warning unless ``warn_random`` is False: the tiny test model's normal case).

    Returns:
        A description for the run's records: ``random init`` or ``<path> (<n> tensors)``.

    Raises:
        UserError: missing file, unreadable file, missing keys or shape mismatches.
    """
    if pretrained is None or str(pretrained).strip().lower() in RANDOM_INIT:
        level = logging.WARNING if warn_random else logging.INFO
        log.log(level, "%s: backbone from random init (model.options.pretrained=%s)", model_name, pretrained)
        return "random init"
    path = Path(pretrained).expanduser()
    how = (
        f"download {WEIGHTS_HINT.get(model_name, 'the official checkpoint')} and set "
        "model.options.pretrained=/path/to/file, or model.options.pretrained=none for random init"
    )
    if not path.is_file():
        raise UserError(f"{model_name}: pretrained checkpoint not found: {path}; {how}")
    try:
        state = read_state_dict(path)
    except Exception as exc:  # not a torch file, pickled objects refused by weights_only, no state dict
        lines = str(exc).strip().splitlines()
        why = f"{type(exc).__name__}: {lines[0][:160]}" if lines else type(exc).__name__
        raise UserError(f"{model_name}: cannot read checkpoint {path} ({why}); {how}") from None
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        first = missing[0] if missing else f"{wrong[0]} {list(state[wrong[0]].shape)} ≠ {list(own[wrong[0]].shape)}"
        raise UserError(
            f"{model_name}: checkpoint {path} does not fit the backbone ({len(missing)} missing, {len(wrong)} "
            f"with other shapes, e.g. {first}); {how}"
        )
    extra = sorted(set(state) - set(own))
    if extra:
        log.warning("%s: %d checkpoint entries not in the backbone ignored, e.g. %s", model_name, len(extra), extra[0])
    backbone.load_state_dict({k: state[k] for k in own}, strict=True)
    return f"{path} ({len(own)} tensors)"
