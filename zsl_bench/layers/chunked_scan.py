"""The chunked selective scan: mamba-ssm's ``selective_scan_fn`` semantics (δ_bias, softplus, D, z gate, last
state) as one autograd function with a hand-written backward. Used through
:func:`zsl_bench.layers.selective_scan.selective_scan_chunked`, which validates shapes and casts to float32.
The work is split over :mod:`~zsl_bench.layers.chunked_layout` (plan, layout, recurrence primitives),
:mod:`~zsl_bench.layers.chunked_forward` and :mod:`~zsl_bench.layers.chunked_grad`.

Layout. Work happens time-major, ``[B, Lp, G, Dg, N]`` (Dm = G·Dg), so one time step of every chunk is a
contiguous slice. L is padded to ``Lp = nc·T``; pad steps have Δ = 0 (decay 1, no input), so the state just
carries through them and ``h_{Lp-1} = h_{L-1}``.

Forward, chunk-parallel (N < 4, or narrow steps B·Dm·N < 2048 over more than one chunk).
1. Decays ``a = exp(Δ ⊗ A)`` and drives ``x = (Δ·u) ⊗ B`` are materialised once, straight from the
   channel-major inputs into the time-major buffers.
2. A loop over the T steps of a chunk, vectorised over all nc chunks, gives each chunk's end state from zero.
3. The chunk carries follow from ``H_c = P_c·H_{c-1} + end_c`` with ``P_c = exp(A·Σ_{t∈c} Δ_t)`` (from the
   Δ sums, never at full size), solved by a short loop or a log-depth doubling scan.
4. A second loop over T runs the recurrence from the true carried-in states, in place, giving every h_t.
5. ``y = Σ_n C·h`` is a batched mat-vec.

Forward, sequential (N ≥ 4 and wide steps or a single chunk): the recurrence runs step by step over blocks of a
few steps whose decays and drives ``[lb, B, G, N, Dg]`` are built just before use, so they are written once and
then read from cache by the loop and by ``y = C·h`` (one batched [1, N] × [N, Dg] product per step). Nothing of size
[B, L, Dm, N] is allocated; the states at chunk boundaries are copied out for the backward.

Every step is the plain recurrence — products of decays in [0, 1], no exp of long cumulative sums, no division —
so it is as stable as the sequential loop for any |A·Δ| (decays underflow to 0 exactly when the true ones do).
The chunk-parallel Python loops run about ``2T`` plus a few per ``log2(nc)`` iterations instead of L (T ≈ √L);
the sequential forward runs L, each over a step wide enough to amortise the call.

Backward. Only the inputs (with Δ after softplus in place of δ, so no softplus is recomputed) and the
carried-in states ``h_in`` [B, nc, Dm, N] (√L times smaller than the states) are saved. a and h are recomputed,
the adjoint ``g_t = ∂L/∂h_t = a_{t+1}·g_{t+1} + C_t·gy_t`` runs the same chunked way in reverse, and then
``∂L/∂(Δ_t A) = g_t·a_t·h_{t-1}`` and ``∂L/∂x_t = g_t`` give every gradient through batched mat-vecs and
blockwise reductions. Working memory: two or three ``[B, L, Dm, N]`` buffers in the chunk-parallel forward and
in the backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zsl_bench.layers.chunked_forward import forward_states
from zsl_bench.layers.chunked_grad import chunked_backward
from zsl_bench.layers.chunked_layout import ScanPlan, chunk_plan, sequential_forward

__all__ = ["ChunkedScanFn", "chunk_plan", "sequential_forward"]


def _delta(delta: torch.Tensor, delta_bias: torch.Tensor | None, softplus: bool) -> torch.Tensor:
    """Δ = softplus(δ + δ_bias) (softplus optional): [B, Dm, L]."""
    pre = delta if delta_bias is None else delta + delta_bias.unsqueeze(-1)
    return F.softplus(pre) if softplus else pre


class ChunkedScanFn(torch.autograd.Function):
    """``apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size[, keep_carries])`` → (out [B, Dm, L],
    h_{L-1} [B, Dm, N]) with the semantics of mamba-ssm's ``selective_scan_fn``.

    u, delta, z are [B, Dm, L]; A is [Dm, N]; B, C are grouped [B, G, N, L]; D, delta_bias are [Dm] (D, z and
    delta_bias may be None). All tensors share one float dtype (the caller casts).
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size, keep_carries=True):
        """``keep_carries`` False (the caller runs without grad) skips recording what a backward would need; inside
        ``forward`` grad mode is always off and ``needs_input_grad`` still reflects parameters, so only the caller
        can tell."""
        u, delta = u.contiguous(), delta.contiguous()
        batch, dm, length = u.shape
        step = batch * dm * A.shape[1]
        t, nc = chunk_plan(length, chunk_size, step)
        plan = ScanPlan(batch, length, B.shape[1], dm // B.shape[1], A.shape[1], t, nc)
        dt = _delta(delta, delta_bias, delta_softplus)
        keep = keep_carries and any(ctx.needs_input_grad[:8])  # a backward may follow: record the chunk carries
        sequential = sequential_forward(length, A.shape[1], step, chunk_size)
        out, last, h_in = forward_states(dt, u, A, B, C, plan=plan, sequential=sequential, keep_carries=keep)
        if D is not None:
            out.addcmul_(u, D.unsqueeze(-1))
        if z is not None:
            out.mul_(F.silu(z))
        ctx.plan, ctx.delta_softplus, ctx.has_bias = plan, delta_softplus, delta_bias is not None
        ctx.save_for_backward(u, dt, A, B, C, D, z, h_in)  # Δ after softplus: no softplus in backward
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out, g_last):
        grads = chunked_backward(
            ctx.saved_tensors, g_out, g_last, plan=ctx.plan, softplus=ctx.delta_softplus, has_bias=ctx.has_bias
        )
        return (*grads, None, None, None)
