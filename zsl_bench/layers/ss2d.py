"""VMamba's 2-D selective scan block, SS2D with forward type ``v05_noz`` (docs/model-maths.md#ss2d).

Parameter names and shapes are the official ones: ``x_proj_weight [K, R+2N, E]``, ``A_logs [K·E, N]``,
``Ds [K·E]``, ``dt_projs_weight [K, E, R]``, ``dt_projs_bias [K, E]``, then ``out_norm``, ``in_proj``, ``conv2d``
and ``out_proj`` (K = 4 scan routes, E = d_inner, R = dt_rank, N = d_state).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zsl_bench.layers.norms import LayerNorm2d, Linear2d
from zsl_bench.layers.selective_scan import selective_scan
from zsl_bench.layers.ssm_init import a_log_init, dt_bias_init, dt_weight_init

__all__ = ["SS2D", "cross_merge", "cross_scan"]

K_ROUTES = 4


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → the four scan routes [B, 4, C, L], L = H·W.

    Route 0 is row-major (l = h·W + w), route 1 column-major (l = w·H + h), routes 2 and 3 are 0 and 1 reversed.
    """
    rows = x.flatten(2)
    cols = x.transpose(2, 3).flatten(2)
    two = torch.stack([rows, cols], dim=1)
    return torch.cat([two, two.flip(-1)], dim=1)


def cross_merge(ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`cross_scan` with summation: [B, 4, C, L] (each in its route order) → [B, C, H, W]."""
    b, _, c, _ = ys.shape
    rows = ys[:, 0] + ys[:, 2].flip(-1)
    cols = ys[:, 1] + ys[:, 3].flip(-1)
    return rows.view(b, c, height, width) + cols.view(b, c, width, height).transpose(2, 3)


class SS2D(nn.Module):
    """SS2D ``v05_noz``: in_proj → depthwise 3×3 conv → SiLU → 4-route selective scan → LN2d → out_proj.

    Input and output are channel-first ``[B, d_model, H, W]``; any H, W.
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 1,
        ssm_ratio: float = 2.0,
        dt_rank: int | str = "auto",
        d_conv: int = 3,
        conv_bias: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        d_inner = int(ssm_ratio * d_model)
        rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.d_inner, self.d_state, self.dt_rank = d_inner, d_state, rank
        k = K_ROUTES
        # Own parameters first, in the official state_dict order.
        bound = d_inner**-0.5  # nn.Linear(d_inner, R + 2N) default init, one per route
        self.x_proj_weight = nn.Parameter(torch.empty(k, rank + 2 * d_state, d_inner).uniform_(-bound, bound))
        self.A_logs = nn.Parameter(a_log_init(k * d_inner, d_state))
        self.Ds = nn.Parameter(torch.ones(k * d_inner))
        self.dt_projs_weight = nn.Parameter(torch.stack([dt_weight_init(d_inner, rank) for _ in range(k)]))
        self.dt_projs_bias = nn.Parameter(
            torch.stack([dt_bias_init(d_inner, dt_min, dt_max, dt_init_floor) for _ in range(k)])
        )
        self.out_norm = LayerNorm2d(d_inner)
        self.in_proj = Linear2d(d_model, d_inner, bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=conv_bias)
        self.act = nn.SiLU()
        self.out_proj = Linear2d(d_inner, d_model, bias=False)

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """The 4-route selective scan of an activated map: [B, E, H, W] → merged [B, E, H, W] (before out_norm)."""
        b, e, h, w = x.shape
        xs = cross_scan(x)  # [B, 4, E, L]
        x_dbl = torch.einsum("bkel,kce->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,ker->bkel", dts, self.dt_projs_weight)
        ys = selective_scan(
            xs.reshape(b, K_ROUTES * e, h * w),
            dts.reshape(b, K_ROUTES * e, h * w),
            -torch.exp(self.A_logs.float()),
            Bs,
            Cs,
            D=self.Ds.float(),
            delta_bias=self.dt_projs_bias.reshape(-1).float(),
            delta_softplus=True,
        )
        return cross_merge(ys.view(b, K_ROUTES, e, h * w), h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, d_model, H, W] → [B, d_model, H, W]."""
        x = self.act(self.conv2d(self.in_proj(x)))
        y = self.scan(x).to(x.dtype)
        return self.out_proj(self.out_norm(y))

    def extra_repr(self) -> str:
        return f"d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, routes={K_ROUTES}"
