"""Vim's bidirectional Mamba mixer (``bimamba_type="v2"``; docs/model-maths.md#vim-mixer), with the official
parameter names.

Shared ``in_proj`` / ``out_proj``; the forward direction uses ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``,
the backward direction (run on the sequence flipped along L) its own ``conv1d_b``, ``x_proj_b``, ``dt_proj_b``,
``A_b_log``, ``D_b``. out = out_proj((y_fwd + flip(y_bwd)) / 2).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from zsl_bench.layers.selective_scan import causal_conv1d_silu, selective_scan
from zsl_bench.layers.ssm_init import a_log_init, dt_bias_init, dt_weight_init

__all__ = ["BiMambaMixer"]


class _Direction(NamedTuple):
    """The parameters of one scan direction: its conv, x / dt projections, A_log [E, N] and D [E]."""

    conv: nn.Conv1d
    x_proj: nn.Linear
    dt_proj: nn.Linear
    a_log: torch.Tensor
    d: torch.Tensor


class BiMambaMixer(nn.Module):
    """The Vim mixer: tokens [B, L, d_model] → [B, L, d_model]."""

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        conv_bias: bool = True,
        bias: bool = False,
        divide_out: bool = True,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        e = expand * d_model
        rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.d_inner, self.d_state, self.dt_rank, self.divide_out = e, d_state, rank, divide_out
        self.A_log = nn.Parameter(a_log_init(e, d_state))
        self.D = nn.Parameter(torch.ones(e))
        self.A_b_log = nn.Parameter(a_log_init(e, d_state))
        self.D_b = nn.Parameter(torch.ones(e))
        self.in_proj = nn.Linear(d_model, 2 * e, bias=bias)
        self.conv1d = nn.Conv1d(e, e, d_conv, groups=e, padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(e, rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(rank, e, bias=True)
        self.conv1d_b = nn.Conv1d(e, e, d_conv, groups=e, padding=d_conv - 1, bias=conv_bias)
        self.x_proj_b = nn.Linear(e, rank + 2 * d_state, bias=False)
        self.dt_proj_b = nn.Linear(rank, e, bias=True)
        self.out_proj = nn.Linear(e, d_model, bias=bias)
        with torch.no_grad():
            for proj in (self.dt_proj, self.dt_proj_b):
                proj.weight.copy_(dt_weight_init(e, rank))
                proj.bias.copy_(dt_bias_init(e, dt_min, dt_max, dt_init_floor))
                proj.bias._no_reinit = True  # keep it through the model-level init

    def _direction(self, xz: torch.Tensor, params: _Direction) -> torch.Tensor:
        """One scan direction: xz [B, 2E, L] → y·SiLU(z) [B, E, L]."""
        conv, x_proj, dt_proj, a_log, d = params
        x, z = xz.chunk(2, dim=1)
        x = causal_conv1d_silu(x, conv.weight, conv.bias)
        dt, b, c = torch.split(x_proj(x.transpose(1, 2)), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = (dt @ dt_proj.weight.t()).transpose(1, 2)
        return selective_scan(
            x,
            delta,
            -torch.exp(a_log.float()),
            b.transpose(1, 2),
            c.transpose(1, 2),
            D=d.float(),
            z=z,
            delta_bias=dt_proj.bias.float(),
            delta_softplus=True,
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, L, d_model] → [B, L, d_model]."""
        xz = self.in_proj(hidden).transpose(1, 2)  # [B, 2E, L]
        y_f = self._direction(xz, _Direction(self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D))
        backward = _Direction(self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b)
        y_b = self._direction(xz.flip(-1), backward)
        y = y_f + y_b.flip(-1)
        if self.divide_out:
            y = y / 2
        return self.out_proj(y.transpose(1, 2))

    def extra_repr(self) -> str:
        return f"d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}"
