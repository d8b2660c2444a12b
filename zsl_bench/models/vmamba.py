"""VMamba v2 backbone (VSSM with SS2D ``v05_noz``), state-dict compatible with the official checkpoints.

Architecture (docs/model-maths.md#vmamba-backbone): patch embed v2 (two 3×3 stride-2 convs, LN2d, GELU) → 4 stages of
VSS blocks
(pre-norm SS2D and MLP residuals, drop-path) with a 3×3 stride-2 conv + LN2d downsample after stages 1–3 →
classifier (LN2d → global average pool → Linear). Everything is channel-first; any input H, W works.

``forward_features(x)`` is the last stage's map *before* the classifier norm (ZeroMamba's F, [B, C, H/32, W/32]),
``forward_head(f)`` turns it into logits, and ``forward(x)`` does both. Build with :func:`build_vmamba_from_official`
(official yacs config names) or :func:`vmamba_tiny` / :func:`vmamba_small` / :func:`vmamba_base`; load an
official checkpoint with :func:`load_official_checkpoint`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from zsl_bench.layers.checkpoints import load_official_checkpoint
from zsl_bench.layers.norms import DropPath, LayerNorm2d, Linear2d, drop_path_rates
from zsl_bench.layers.ss2d import SS2D

__all__ = [
    "VSSM",
    "VSSBlock",
    "build_vmamba_from_official",
    "load_official_checkpoint",
    "official_vmamba_config",
    "vmamba_base",
    "vmamba_small",
    "vmamba_tiny",
]


class Mlp(nn.Module):
    """1×1 conv MLP: Linear2d(dim → hidden) → GELU → Linear2d(hidden → dim) on [B, dim, H, W]."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear2d(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = Linear2d(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VSSBlock(nn.Module):
    """x ← x + DropPath(SS2D(LN(x))); x ← x + DropPath(MLP(LN(x))) on [B, dim, H, W]."""

    def __init__(
        self,
        dim: int,
        *,
        drop_path: float = 0.0,
        d_state: int = 1,
        ssm_ratio: float = 2.0,
        dt_rank: int | str = "auto",
        d_conv: int = 3,
        conv_bias: bool = False,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.op = SS2D(dim, d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank, d_conv=d_conv, conv_bias=conv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = LayerNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.op(self.norm(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _patch_embed(in_chans: int, dim: int) -> nn.Sequential:
    """Patch embed v2 (stride 4); the Identity slots keep the official indices {0, 2, 5, 7}."""
    half = dim // 2
    return nn.Sequential(
        nn.Conv2d(in_chans, half, 3, stride=2, padding=1),
        nn.Identity(),
        LayerNorm2d(half),
        nn.Identity(),
        nn.GELU(),
        nn.Conv2d(half, dim, 3, stride=2, padding=1),
        nn.Identity(),
        LayerNorm2d(dim),
    )


def _downsample(dim: int, out_dim: int) -> nn.Sequential:
    """Downsample v3: 3×3 stride-2 conv + LN2d at the official indices {1, 3}."""
    return nn.Sequential(
        nn.Identity(), nn.Conv2d(dim, out_dim, 3, stride=2, padding=1), nn.Identity(), LayerNorm2d(out_dim)
    )


class VSSM(nn.Module):
    """The VMamba v2 classifier; see the module docstring."""

    def __init__(
        self,
        *,
        depths: Sequence[int] = (2, 2, 15, 2),
        embed_dim: int = 96,
        num_classes: int = 1000,
        in_chans: int = 3,
        d_state: int = 1,
        ssm_ratio: float = 2.0,
        dt_rank: int | str = "auto",
        d_conv: int = 3,
        conv_bias: bool = False,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        dims = [embed_dim * 2**i for i in range(len(depths))]
        self.dims, self.num_features = dims, dims[-1]
        rates = drop_path_rates(drop_path_rate, sum(depths))
        self.patch_embed = _patch_embed(in_chans, embed_dim)
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            blocks = [
                VSSBlock(
                    dims[i],
                    drop_path=rates[sum(depths[:i]) + j],
                    d_state=d_state,
                    ssm_ratio=ssm_ratio,
                    dt_rank=dt_rank,
                    d_conv=d_conv,
                    conv_bias=conv_bias,
                    mlp_ratio=mlp_ratio,
                )
                for j in range(depth)
            ]
            last = i == len(depths) - 1
            down = nn.Identity() if last else _downsample(dims[i], dims[i + 1])
            self.layers.append(nn.Sequential(OrderedDict(blocks=nn.Sequential(*blocks), downsample=down)))
        self.classifier = nn.Sequential(
            OrderedDict(
                norm=LayerNorm2d(self.num_features),
                avgpool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(1),
                head=nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity(),
            )
        )
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → the last stage's map before the classifier norm, [B, C, ⌈H/32⌉, ⌈W/32⌉]."""
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C, h, w] → logits [B, num_classes] (LN2d → average pool → Linear)."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → logits [B, num_classes]."""
        return self.forward_head(self.forward_features(x))


def _init_weights(m: nn.Module) -> None:
    """Linear (and Linear2d) ~ trunc_normal(0.02) with zero bias, LayerNorm = (1, 0); S6 parameters keep the
    Mamba init set in SS2D, convolutions keep PyTorch's default."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------------------------
# Official configs
# ----------------------------------------------------------------------------------------------------------------
# The option values this implementation supports: the VMamba v2 family ZeroMamba uses.
_REQUIRED = {
    "SSM_FORWARDTYPE": ("v05_noz",),
    "NORM_LAYER": ("ln2d", "ln"),  # same maths and keys; "ln" is the channel-last variant (vmambav2_base yaml)
    "DOWNSAMPLE": ("v3",),
    "PATCHEMBED": ("v2",),
    "SSM_ACT_LAYER": ("silu",),
    "MLP_ACT_LAYER": ("gelu",),
    "PATCH_SIZE": (4,),
    "POSEMBED": (False,),
    "GMLP": (False,),
    "PATCH_NORM": (True,),
    "SSM_INIT": ("v0",),
}
_V2_DEFAULTS: dict[str, Any] = {
    "PATCH_SIZE": 4,
    "IN_CHANS": 3,
    "SSM_D_STATE": 1,
    "SSM_RATIO": 2.0,
    "SSM_DT_RANK": "auto",
    "SSM_ACT_LAYER": "silu",
    "SSM_CONV": 3,
    "SSM_CONV_BIAS": False,
    "SSM_DROP_RATE": 0.0,
    "SSM_INIT": "v0",
    "SSM_FORWARDTYPE": "v05_noz",
    "MLP_RATIO": 4.0,
    "MLP_ACT_LAYER": "gelu",
    "MLP_DROP_RATE": 0.0,
    "PATCH_NORM": True,
    "NORM_LAYER": "ln2d",
    "DOWNSAMPLE": "v3",
    "PATCHEMBED": "v2",
    "POSEMBED": False,
    "GMLP": False,
}
_SIZES: dict[str, dict[str, Any]] = {
    # vmambav2v_tiny_224.yaml, vmambav2_small_224.yaml, vmambav2_base_224.yaml (shapes match ref/vmamba/*_keys.txt)
    "tiny": {"EMBED_DIM": 96, "DEPTHS": [2, 2, 8, 2], "SSM_RATIO": 1.0, "DROP_PATH_RATE": 0.2},
    "small": {"EMBED_DIM": 96, "DEPTHS": [2, 2, 15, 2], "SSM_RATIO": 2.0, "DROP_PATH_RATE": 0.3},
    "base": {"EMBED_DIM": 128, "DEPTHS": [2, 2, 15, 2], "SSM_RATIO": 2.0, "DROP_PATH_RATE": 0.6},
}


def official_vmamba_config(size: str, num_classes: int = 1000) -> dict[str, Any]:
    """The official config (``{"MODEL": {...}}``) of VMamba v2 ``tiny`` | ``small`` | ``base``."""
    if size not in _SIZES:
        raise ValueError(f"size must be one of {sorted(_SIZES)}; got {size!r}")
    spec = dict(_SIZES[size])
    drop = spec.pop("DROP_PATH_RATE")
    return {
        "MODEL": {"TYPE": "vssm", "NUM_CLASSES": num_classes, "DROP_PATH_RATE": drop, "VSSM": {**_V2_DEFAULTS, **spec}}
    }


def build_vmamba_from_official(cfg: Mapping[str, Any]) -> VSSM:
    """Build a :class:`VSSM` from an official config given as a dict with the official names.

    Accepts ``{"MODEL": {"NUM_CLASSES", "DROP_PATH_RATE", "VSSM": {...}}}`` (as in ref/vmamba/tiny_config.json,
    extra top-level keys ignored) or the ``MODEL`` mapping itself. Missing VSSM keys take the v2-family values;
    options other than the v2 family's (forward type ``v05_noz``, ``ln2d``, downsample ``v3``, patch embed
    ``v2``, …) raise ``ValueError``.
    """
    model = cfg.get("MODEL", cfg)
    if model.get("TYPE", "vssm") != "vssm":
        raise ValueError(f"MODEL.TYPE must be 'vssm'; got {model.get('TYPE')!r}")
    vssm = {**_V2_DEFAULTS, **dict(model.get("VSSM", {}))}
    for key, allowed in _REQUIRED.items():
        value = vssm[key]
        if (value.lower() if isinstance(value, str) else value) not in allowed:
            raise ValueError(f"MODEL.VSSM.{key}={value!r} is not supported (supported: {list(allowed)})")
    for key in ("SSM_DROP_RATE", "MLP_DROP_RATE"):
        if float(vssm[key]) != 0.0:
            raise ValueError(f"MODEL.VSSM.{key} must be 0 (dropout inside blocks is not implemented)")
    if "DEPTHS" not in vssm or "EMBED_DIM" not in vssm:
        raise ValueError("MODEL.VSSM needs DEPTHS and EMBED_DIM")
    return VSSM(
        depths=list(vssm["DEPTHS"]),
        embed_dim=int(vssm["EMBED_DIM"]),
        num_classes=int(model.get("NUM_CLASSES", 1000)),
        in_chans=int(vssm["IN_CHANS"]),
        d_state=int(vssm["SSM_D_STATE"]),
        ssm_ratio=float(vssm["SSM_RATIO"]),
        dt_rank=vssm["SSM_DT_RANK"],
        d_conv=int(vssm["SSM_CONV"]),
        conv_bias=bool(vssm["SSM_CONV_BIAS"]),
        mlp_ratio=float(vssm["MLP_RATIO"]),
        drop_path_rate=float(model.get("DROP_PATH_RATE", 0.0)),
    )


def vmamba_tiny(num_classes: int = 1000, **overrides: Any) -> VSSM:
    """VMamba-T v2 (``vmambav2v_tiny_224``): dims 96→768, depths [2, 2, 8, 2], ssm_ratio 1, 30.2 M params."""
    return _sized("tiny", num_classes, overrides)


def vmamba_small(num_classes: int = 1000, **overrides: Any) -> VSSM:
    """VMamba-S v2 (``vmambav2_small_224``, ZeroMamba's backbone): dims 96→768, depths [2, 2, 15, 2], 50.1 M."""
    return _sized("small", num_classes, overrides)


def vmamba_base(num_classes: int = 1000, **overrides: Any) -> VSSM:
    """VMamba-B v2 (``vmambav2_base_224``): dims 128→1024, depths [2, 2, 15, 2], 88.6 M params."""
    return _sized("base", num_classes, overrides)


def _sized(size: str, num_classes: int, overrides: Mapping[str, Any]) -> VSSM:
    cfg = official_vmamba_config(size, num_classes)
    for key, value in overrides.items():  # official names: DROP_PATH_RATE at MODEL level, the rest under VSSM
        (cfg["MODEL"] if key == "DROP_PATH_RATE" else cfg["MODEL"]["VSSM"])[key] = value
    return build_vmamba_from_official(cfg)
