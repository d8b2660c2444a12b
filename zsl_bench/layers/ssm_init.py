"""The S6 parameter initialisation of Mamba ("ssm_init v0"; docs/model-maths.md#s6-initialisation), shared by SS2D
and Vim."""

from __future__ import annotations

import math

import torch

__all__ = ["a_log_init", "dt_bias_init", "dt_weight_init"]


def dt_weight_init(d_inner: int, dt_rank: int, dt_scale: float = 1.0) -> torch.Tensor:
    """dt projection weight ``[d_inner, dt_rank]`` ~ U(±dt_scale · dt_rank^-0.5)."""
    bound = dt_scale * dt_rank**-0.5
    return torch.empty(d_inner, dt_rank).uniform_(-bound, bound)


def dt_bias_init(d_inner: int, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4) -> torch.Tensor:
    """dt bias ``[d_inner]`` = softplus⁻¹(dt), dt = exp(U(log dt_min, log dt_max)) clamped at ``dt_floor``."""
    dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_floor)
    return dt + torch.log(-torch.expm1(-dt))


def a_log_init(d_inner: int, d_state: int) -> torch.Tensor:
    """S4D-real ``log A``: row ``[log 1, …, log N]`` for every channel → ``[d_inner, d_state]`` (A = -exp)."""
    return torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1).contiguous()
