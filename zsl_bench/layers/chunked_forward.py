"""The forward of the chunked selective scan: the states h_t and y = Σ_n C·h, chunk-parallel or step by step.

Called by :class:`zsl_bench.layers.chunked_scan.ChunkedScanFn` (its forward) through :func:`forward_states`; the
algorithm is described in :mod:`zsl_bench.layers.chunked_scan`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from zsl_bench.layers.chunked_layout import (
    ScanPlan,
    chunk_decays,
    contract,
    decays_and_drives,
    local_ends,
    run_chunks_,
    scan_chunks,
)

__all__ = ["forward_states"]

_BLOCK_ELEMS = 1 << 17  # elements of one block buffer in the sequential forward (its three fit a core's L2 cache)
_PARALLEL_GRAIN = 32768  # ATen's intra-op grain: smaller element-wise ops run on the calling thread only


def _forward_carries(a_steps, x_steps, dt, A, plan: ScanPlan) -> Tensor:
    """The state carried into each chunk, h_in [B, nc, G, Dg, N] (zero for the first)."""
    if plan.nc == 1:
        return torch.zeros_like(x_steps[0])
    ends = local_ends(a_steps, x_steps, reverse=False)
    states = scan_chunks(chunk_decays(dt, A, plan), ends)
    h_in = torch.zeros_like(states)
    h_in[:, 1:] = states[:, :-1]
    return h_in


def _time_major(x: Tensor) -> Tensor:
    """Contiguous [B, Dm, L] → contiguous [L, B, Dm] (a permuting copy: measured 1.7–2.8× faster than copying
    the [B·Dm, L] transpose, for B·Dm from 768 to 12288 at L = 197)."""
    return x.permute(2, 0, 1).contiguous()


@contextlib.contextmanager
def _one_thread_if(narrow: bool) -> Iterator[None]:
    """Run the body with one intra-op thread on this thread (OpenMP builds; restored after) when ``narrow``.

    The sequential forward's loop steps are below the parallel grain, so they run on the calling thread; if the
    block-wide ops around them were split over threads, half of every block would be built in another core's
    cache and then pulled across by the loop (measured 7–10 % slower on 2 shared cores). The full-size ops
    outside (softplus, the gate) keep every thread.
    """
    threads = torch.get_num_threads()
    if not narrow or threads == 1 or not torch.backends.openmp.is_available():
        yield
        return
    torch.set_num_threads(1)  # OpenMP and MKL thread counts are per calling thread
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _sequential_forward(
    dt: Tensor, u: Tensor, A: Tensor, B: Tensor, C: Tensor, *, plan: ScanPlan, keep_carries: bool = True
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The recurrence step by step, in blocks of ``lb`` steps whose decays and drives are built just before use.

    Each block's buffers ``[lb, B, G, N, Dg]`` stay in cache from their creation through the loop to the
    contraction, so every full-size quantity is written once and read from cache; nothing of size
    [B, L, Dm, N] is ever allocated. The N-before-Dg layout makes ``y = C·h`` one batched [1, N] × [N, Dg]
    matrix product per (step, batch, group).

    Args: Δ and u [B, Dm, L], A [Dm, N], B and C grouped [B, G, N, L].
    Returns: y = Σ_n C·h, time-major [L, B, Dm], the last state [B, Dm, N] and the states carried into the
    chunks of ``plan`` (what the backward restarts from), h_in [B, nc, G, Dg, N], or None unless
    ``keep_carries`` (inference: no backward will run).
    """
    p = plan
    length, rows = p.length, p.batch * p.groups
    dt5 = _time_major(dt).view(length, p.batch, p.groups, 1, p.dg)
    v = _time_major(dt * u).view(length, p.batch, p.groups, 1, p.dg)  # Δ·u
    a_nd = A.view(p.groups, p.dg, p.n).transpose(1, 2).contiguous()  # [G, N, Dg]
    b5 = B.permute(3, 0, 1, 2).unsqueeze(-1).contiguous()  # [L, B, G, N, 1]
    c3 = C.permute(3, 0, 1, 2).reshape(length * rows, 1, p.n)  # [L·B·G, 1, N]
    lb = max(1, min(length, _BLOCK_ELEMS // (p.batch * p.dm * p.n)))
    a = u.new_empty(lb, p.batch, p.groups, p.n, p.dg)
    xs = (torch.empty_like(a), torch.empty_like(a))  # alternate, so the previous block's last state survives
    a_steps, x_steps = a.unbind(0), (xs[0].unbind(0), xs[1].unbind(0))
    y = u.new_empty(length * rows, 1, p.dg)
    h_in = u.new_zeros(p.batch, p.nc, p.groups, p.dg, p.n) if keep_carries else None
    prev = None
    for j, lo in enumerate(range(0, length, lb)):
        k = min(lb, length - lo)
        x, steps = xs[j % 2][:k], x_steps[j % 2]
        torch.mul(dt5[lo : lo + k], a_nd, out=a[:k]).exp_()  # decays exp(Δ A)
        torch.mul(v[lo : lo + k], b5[lo : lo + k], out=x)  # drives Δ·u·B
        if prev is not None:
            steps[0].addcmul_(a_steps[0], prev)
        for i in range(1, k):
            steps[i].addcmul_(a_steps[i], steps[i - 1])
        torch.bmm(c3[lo * rows : (lo + k) * rows], x.view(k * rows, p.n, p.dg), out=y[lo * rows : (lo + k) * rows])
        for c in range(lo // p.t + 1, min((lo + k) // p.t, p.nc - 1) + 1) if keep_carries else ():
            h_in[:, c] = steps[c * p.t - 1 - lo].transpose(-1, -2)  # chunk c starts after step c·T − 1
        prev = steps[k - 1]
    last = prev.transpose(-1, -2).reshape(p.batch, p.dm, p.n)
    return y.view(length, p.batch, p.dm), last, h_in


def _chunked_forward(
    dt: Tensor, u: Tensor, A: Tensor, B: Tensor, C: Tensor, *, plan: ScanPlan
) -> tuple[Tensor, Tensor, Tensor]:
    """Steps 1–5 of the chunk-parallel forward (:mod:`zsl_bench.layers.chunked_scan`). Returns y = Σ_n C·h
    [B, Dm, L], the last state [B, Dm, N] and the carried-in states h_in [B, nc, G, Dg, N]."""
    a, h = decays_and_drives(dt, u, A, B, plan)
    a_s, h_s = plan.steps(a), plan.steps(h)
    h_in = _forward_carries(a_s, h_s, dt, A, plan)
    run_chunks_(a_s, h_s, h_in, reverse=False)
    del a, a_s, h_s
    last = h[:, -1].reshape(plan.batch, plan.dm, plan.n).clone()
    return contract(h, C, plan), last, h_in


def forward_states(
    dt: Tensor, u: Tensor, A: Tensor, B: Tensor, C: Tensor, *, plan: ScanPlan, sequential: bool, keep_carries: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The scan without D and the gate: y = Σ_n C·h [B, Dm, L] (a new contiguous tensor), the last state
    [B, Dm, N] and the states carried into the chunks of ``plan``, h_in [B, nc, G, Dg, N].

    Args: Δ and u [B, Dm, L], A [Dm, N], B and C grouped [B, G, N, L]; ``sequential``: run the cache-blocked
    sequential forward (:func:`~zsl_bench.layers.chunked_layout.sequential_forward` decides), else the
    chunk-parallel one; ``keep_carries`` False lets the sequential forward skip h_in (None then).
    """
    if not sequential:
        return _chunked_forward(dt, u, A, B, C, plan=plan)
    step = plan.batch * plan.dm * plan.n
    with _one_thread_if(u.device.type == "cpu" and step < _PARALLEL_GRAIN):
        y, last, h_in = _sequential_forward(dt, u, A, B, C, plan=plan, keep_carries=keep_carries)
    return y.permute(1, 2, 0).contiguous(), last, h_in  # [L, B, Dm] → [B, Dm, L]
