"""Vision Mamba (Vim) backbone, state-dict compatible with the official ``vim_*_midclstok_div2`` checkpoints.

Forward (docs/model-maths.md#vim-forward): Conv2d patch embed → tokens [B, M, D] → class token inserted at index M//2
→ + learned
absolute position embedding → ``depth`` blocks of "add → RMSNorm → bidirectional Mamba mixer" (residual kept in
float32) → final add + RMSNorm → the class-token feature → Linear head.

``forward_tokens(x)`` returns all final tokens [B, M+1, D] (class token at ``cls_position(M)``),
``forward_features(x)`` the class-token feature [B, D] (the official ``forward_features``), ``forward(x)`` logits.
Inputs whose patch grid differs from the position embedding's (other sizes, non-square) get a bicubic
interpolation of the patch part of the embedding.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zsl_bench.layers.bimamba import BiMambaMixer
from zsl_bench.layers.checkpoints import load_official_checkpoint
from zsl_bench.layers.norms import DropPath, RMSNorm, drop_path_rates

__all__ = [
    "VimBlock",
    "VisionMamba",
    "load_official_checkpoint",
    "resize_pos_embed",
    "vim_base",
    "vim_small",
    "vim_tiny",
]


class PatchEmbed(nn.Module):
    """Conv2d(in_chans → D, kernel ``patch``, stride ``stride``): [B, 3, H, W] → ([B, M, D], (gh, gw))."""

    def __init__(self, patch_size: int = 16, stride: int = 16, in_chans: int = 3, embed_dim: int = 192) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class VimBlock(nn.Module):
    """residual ← residual + DropPath(hidden) (or the input itself for the first block); hidden ← mixer(norm(residual)).

    ``forward(hidden, residual)`` → (hidden [B, L, D], residual [B, L, D] in float32).
    """

    def __init__(self, dim: int, d_state: int = 16, drop_path: float = 0.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.mixer = BiMambaMixer(dim, d_state=d_state)
        self.norm = RMSNorm(dim, eps=eps)
        self.drop_path = DropPath(drop_path)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        residual = hidden.float() if residual is None else residual + self.drop_path(hidden).float()
        hidden = self.mixer(self.norm(residual.to(self.norm.weight.dtype)))
        return hidden, residual


class VisionMamba(nn.Module):
    """Vim with a middle class token, absolute position embedding and RMSNorm; see the module docstring."""

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        stride: int = 16,
        embed_dim: int = 192,
        depth: int = 24,
        d_state: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_path_rate: float = 0.1,
        norm_epsilon: float = 1e-5,
    ) -> None:
        super().__init__()
        grid = (img_size - patch_size) // stride + 1
        self.grid, self.embed_dim, self.num_features = (grid, grid), embed_dim, embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.patch_embed = PatchEmbed(patch_size, stride, in_chans, embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        rates = drop_path_rates(drop_path_rate, depth)
        self.layers = nn.ModuleList(
            VimBlock(embed_dim, d_state=d_state, drop_path=rates[i], eps=norm_epsilon) for i in range(depth)
        )
        self.norm_f = RMSNorm(embed_dim, eps=norm_epsilon)
        self.drop_path = DropPath(drop_path_rate)
        self._init_weights(depth)

    @staticmethod
    def cls_position(num_patches: int) -> int:
        """Index of the class token among ``num_patches + 1`` tokens (the middle: M // 2)."""
        return num_patches // 2

    def _init_weights(self, depth: int) -> None:
        """Official recipe: trunc_normal(0.02) for cls/pos/head, lecun-normal patch conv, zero Linear biases
        (except dt_proj), out_proj ~ kaiming_uniform(√5) / √depth."""
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        proj = self.patch_embed.proj
        fan_in = proj.in_channels * proj.kernel_size[0] * proj.kernel_size[1]
        nn.init.trunc_normal_(proj.weight, std=math.sqrt(1.0 / fan_in))
        nn.init.zeros_(proj.bias)
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        for name, module in self.layers.named_modules():
            if (
                isinstance(module, nn.Linear)
                and module.bias is not None
                and not getattr(module.bias, "_no_reinit", False)
            ):
                nn.init.zeros_(module.bias)
            if name.endswith("out_proj"):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
                with torch.no_grad():
                    module.weight /= math.sqrt(depth)

    def _pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position embedding for a ``grid`` of patches, [1, gh·gw + 1, D] (class token in the middle)."""
        return self.pos_embed if grid == self.grid else resize_pos_embed(self.pos_embed, self.grid, grid)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → tokens with the class token inserted and position embedding added, [B, M+1, D]."""
        tokens, grid = self.patch_embed(x)
        mid = self.cls_position(tokens.shape[1])
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([tokens[:, :mid], cls, tokens[:, mid:]], dim=1)
        return tokens + self._pos_embed(grid)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → the final normalised tokens [B, M+1, D] (class token at ``cls_position(M)``)."""
        hidden, residual = self.embed(x), None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
        residual = residual + self.drop_path(hidden).float()
        return self.norm_f(residual.to(self.norm_f.weight.dtype))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → the class-token feature [B, D]."""
        tokens = self.forward_tokens(x)
        return tokens[:, self.cls_position(tokens.shape[1] - 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → logits [B, num_classes]."""
        return self.head(self.forward_features(x))


def resize_pos_embed(pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a middle-class-token position embedding: [1, M+1, D] on ``old_grid`` → [1, M'+1, D].

    The class token's entry (index M // 2) is kept as is and re-inserted at M' // 2.
    """
    mid = VisionMamba.cls_position(old_grid[0] * old_grid[1])
    cls = pos_embed[:, mid : mid + 1]
    patches = torch.cat([pos_embed[:, :mid], pos_embed[:, mid + 1 :]], dim=1)
    patches = patches.reshape(1, *old_grid, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches.float(), size=new_grid, mode="bicubic", align_corners=False).to(cls.dtype)
    patches = patches.flatten(2).transpose(1, 2)
    new_mid = VisionMamba.cls_position(new_grid[0] * new_grid[1])
    return torch.cat([patches[:, :new_mid], cls, patches[:, new_mid:]], dim=1)


_SIZES: dict[str, dict[str, Any]] = {
    # vim_{tiny,small}_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_midclstok_div2 and
    # vim_base_patch16_224_bimambav2_final_pool_mean_abs_pos_embed_with_middle_cls_token_div2
    "tiny": {"embed_dim": 192, "depth": 24},
    "small": {"embed_dim": 384, "depth": 24},
    "base": {"embed_dim": 768, "depth": 24},
}


def _sized(size: str, overrides: dict[str, Any]) -> VisionMamba:
    return VisionMamba(**{"patch_size": 16, "stride": 16, "d_state": 16, **_SIZES[size], **overrides})


def vim_tiny(**overrides: Any) -> VisionMamba:
    """Vim-Ti: D = 192, 24 blocks, patch 16 (7.1 M params with the 1000-class head)."""
    return _sized("tiny", overrides)


def vim_small(**overrides: Any) -> VisionMamba:
    """Vim-S: D = 384, 24 blocks, patch 16 (25.8 M params with the 1000-class head)."""
    return _sized("small", overrides)


def vim_base(**overrides: Any) -> VisionMamba:
    """Vim-B: D = 768, 24 blocks, patch 16."""
    return _sized("base", overrides)
