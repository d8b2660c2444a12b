"""The backward of the chunked selective scan: every input gradient from the saved inputs and chunk carries.

Called by :class:`zsl_bench.layers.chunked_scan.ChunkedScanFn` (its backward) through :func:`chunked_backward`;
the algorithm is described in :mod:`zsl_bench.layers.chunked_scan`. Reductions run over a few blocks of time steps
(:func:`_blocks`), so no product is materialised at full size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zsl_bench.layers.chunked_layout import (
    ScanPlan,
    channel_major_view,
    chunk_decays,
    contract,
    decays_and_drives,
    drives,
    local_ends,
    run_chunks_,
    scan_chunks,
    time_major_view,
)

__all__ = ["chunked_backward"]


def _reverse_carries(a_steps, g_steps, skip: torch.Tensor, plan: ScanPlan) -> torch.Tensor:
    """The adjoint entering each chunk's last step from the next chunk, [B, nc, G, Dg, N] (zero for the last).

    With V_c the adjoint at chunk c's first step: V_c = start_c + R_c·first_{c+1}·V_{c+1}, where R_c is the
    product of a over chunk c without its first step and first_c = a at chunk c's first step.
    """
    if plan.nc == 1:
        return torch.zeros_like(g_steps[0])
    starts = local_ends(a_steps, g_steps, reverse=True)
    first = a_steps[0]
    coeff = skip.clone()
    coeff[:, :-1] *= first[:, 1:]
    v = scan_chunks(coeff.flip(1), starts.flip(1)).flip(1)
    k_in = torch.zeros_like(v)
    k_in[:, :-1] = first[:, 1:] * v[:, 1:]
    return k_in


def _blocks(length: int, parts: int = 4) -> list[tuple[int, int]]:
    """Split range(length) into ``parts`` contiguous blocks, so products are never materialised at full size."""
    step = -(-length // parts)
    return [(lo, min(lo + step, length)) for lo in range(0, length, step)]


def _reduce_dg(factors: tuple[torch.Tensor, ...], x: torch.Tensor, plan: ScanPlan) -> torch.Tensor:
    """r[b, g, n, t] = Σ_{d∈g} v[b, d, t] · x[b, t, d, n] with v the product of the channel-major ``factors``
    and x time-major: [B, G, N, L]."""
    p = plan
    r = x.new_empty(p.batch, p.groups, p.n, p.length)
    for lo, hi in _blocks(p.length):
        v = factors[0][..., lo:hi]
        for f in factors[1:]:
            v = v * f[..., lo:hi]
        lhs = v.reshape(p.batch, p.groups, p.dg, hi - lo).permute(0, 3, 1, 2).unsqueeze(-2)  # [B, l, G, 1, Dg]
        r[..., lo:hi] = torch.matmul(lhs, x[:, lo:hi]).squeeze(-2).permute(0, 2, 3, 1)
    return r


def _dot_bl(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ_{b, t} x[b, d, t] · y[b, d, t] → [Dm] (blockwise)."""
    return sum((x[..., lo:hi] * y[..., lo:hi]).sum((0, 2)) for lo, hi in _blocks(x.shape[-1]))


def _weighted_n_sum(x: torch.Tensor, A: torch.Tensor, plan: ScanPlan) -> torch.Tensor:
    """r[b, d, t] = Σ_n x[b, t, d, n] · A[d, n] from time-major x → channel-major [B, Dm, L] (blockwise in t)."""
    p = plan
    a5 = A.view(p.groups, p.dg, p.n)
    if p.n == 1:
        return torch.mul(channel_major_view(x, p), a5).view(p.batch, p.dm, p.length)
    r = x.new_empty(p.batch, p.groups, p.dg, p.length)
    for lo, hi in _blocks(p.length):
        r[..., lo:hi] = (x[:, lo:hi] * a5).sum(-1).permute(0, 2, 3, 1)
    return r.view(p.batch, p.dm, p.length)


def _gate_grad(h, u, C, D, z, *, g_out: torch.Tensor, plan: ScanPlan) -> torch.Tensor:
    """∂L/∂z for out = y·SiLU(z), y = Σ_n C·h + D·u, recomputing y block by block: [B, Dm, L]."""
    p = plan
    g_z = torch.empty_like(z)
    for lo, hi in _blocks(p.length):
        hb = h[:, lo:hi]
        cb = C[..., lo:hi].permute(0, 3, 1, 2)  # [B, l, G, N]
        y = hb.squeeze(-1) * cb if p.n == 1 else torch.matmul(hb, cb.unsqueeze(-1)).squeeze(-1)  # [B, l, G, Dg]
        y = y.reshape(p.batch, hi - lo, p.dm).transpose(1, 2)
        if D is not None:
            y = torch.addcmul(y, u[..., lo:hi], D.unsqueeze(-1))
        zb = z[..., lo:hi]
        sig = torch.sigmoid(zb)
        torch.mul(y * g_out[..., lo:hi], sig * (1 + zb * (1 - sig)), out=g_z[..., lo:hi])
    return g_z


def _shift_mul_(a: tuple[torch.Tensor, ...], h: tuple[torch.Tensor, ...]) -> None:
    """In place: h_t ← a_t · h_{t-1} (h_{-1} = 0), i.e. ∂h_t/∂(Δ_t A), over step slices [B, nc, G, Dg, N]."""
    ends = h[-1].clone()  # each chunk's last state, needed by the next chunk's first step
    for i in range(len(h) - 1, 0, -1):
        torch.mul(a[i], h[i - 1], out=h[i])
    h[0][:, 1:] = a[0][:, 1:] * ends[:, :-1]
    h[0][:, 0].zero_()


def chunked_backward(
    saved: tuple[torch.Tensor | None, ...],
    g_out: torch.Tensor | None,
    g_last: torch.Tensor | None,
    *,
    plan: ScanPlan,
    softplus: bool,
    has_bias: bool,
) -> tuple[torch.Tensor | None, ...]:
    """(∂u, ∂δ, ∂A, ∂B, ∂C, ∂D, ∂z, ∂δ_bias), shaped as the inputs (grouped B, C; None for absent D, z, δ_bias).

    ``saved`` is the forward's (u, Δ after softplus, A, B, C, D, z, h_in); g_out [B, Dm, L] and g_last [B, Dm, N]
    are the incoming gradients (either may be None). ``softplus`` and ``has_bias`` are the forward's options.
    """
    u, dt, A, B, C, D, z, h_in = saved
    p = plan
    g_out = torch.zeros_like(u) if g_out is None else g_out.to(u.dtype).contiguous()

    # Recompute decays and states from the saved carries.
    a, h = decays_and_drives(dt, u, A, B, p)
    a_s, h_s = p.steps(a), p.steps(h)
    run_chunks_(a_s, h_s, h_in, reverse=False)
    skip = chunk_decays(dt, A, p, skip_first=True)

    g_z = _gate_grad(h, u, C, D, z, g_out=g_out, plan=p) if z is not None else None
    g_y = g_out * F.silu(z) if z is not None else g_out  # ∂L/∂(Σ_n C·h + D·u)
    g_D = _dot_bl(g_y, u) if D is not None else None
    g_C = _reduce_dg((g_y,), h, p)
    _shift_mul_(a_s, h_s)  # h now holds a_t·h_{t-1} = ∂h_t/∂(Δ_t A)

    # Adjoint g_t = C_t·gy_t + a_{t+1}·g_{t+1}; ∂L/∂h_{L-1} enters at the last pad step and carries through.
    g = drives(g_y, C, p)
    if g_last is not None:
        g[:, -1] += g_last.to(g.dtype).view(p.batch, p.groups, p.dg, p.n)
    g_s = p.steps(g)
    run_chunks_(a_s, g_s, _reverse_carries(a_s, g_s, skip, p), reverse=True)
    del a, a_s, h_s, g_s
    gl = h.mul_(g)  # ∂L/∂(Δ A), [B, Lp, G, Dg, N]
    del h

    g_B = _reduce_dg((dt, u), g, p)
    q = contract(g, B, p)  # Σ_n g·B = ∂L/∂(Δ·u), channel-major
    del g

    g_dt = _weighted_n_sum(gl, A, p).addcmul_(q, u)
    g_A = gl[:, : p.length].mul_(time_major_view(dt, p)).sum((0, 1)).reshape(p.dm, p.n)
    del gl
    g_u = q.mul_(dt)
    if D is not None:
        g_u.addcmul_(g_y, D.unsqueeze(-1))
    if softplus:  # dΔ/dδ = σ(δ + δ_bias) = 1 − exp(−Δ)
        g_dt.mul_(torch.expm1(-dt).neg_())
    g_bias = g_dt.sum((0, 2)) if has_bias else None
    return g_u, g_dt, g_A, g_B, g_C, g_D, g_z, g_bias
