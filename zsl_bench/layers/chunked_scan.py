"""The chunked selective scan: mamba-ssm's ``selective_scan_fn`` semantics (δ_bias, softplus, D, z gate, last
state) as one autograd function with a hand-written backward. Used through
:func:`zsl_bench.layers.selective_scan.selective_scan_chunked`, which validates shapes and casts to float32.

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

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["ChunkedScanFn", "chunk_plan", "sequential_forward"]

_DOUBLING_MIN_CHUNKS = 16  # below this many chunks the carry loop is cheaper than the doubling scan
_SINGLE_CHUNK_MAX_STEPS = 256  # one chunk (a plain loop over L) for sequences up to this long …
_SINGLE_CHUNK_MIN_STEP = 1024  # … when one step is at least this many elements (loop overhead amortised)
_SEQUENTIAL_MIN_STEP = 2048  # forward: steps this wide run the sequential, cache-blocked forward at any length …
_SEQUENTIAL_MIN_STATES = 4  # … given this many states (N); see sequential_forward
_BLOCK_ELEMS = 1 << 17  # elements of one block buffer in the sequential forward (its three fit a core's L2 cache)
_PARALLEL_GRAIN = 32768  # ATen's intra-op grain: smaller element-wise ops run on the calling thread only


def chunk_plan(length: int, chunk_size: int | None = None, step_elems: int = 0) -> tuple[int, int]:
    """(T, nc): steps per chunk and number of chunks, with ``T·nc ≥ L`` and less than one chunk of padding.

    ``step_elems`` is B·Dm·N, the size of one time step. By default short sequences with wide steps run as one
    chunk (L loop steps, but a single pass over the data and no carries); otherwise T ≈ √L, which balances
    the ~2T Python-level loop steps against the number of chunks whose carries must be combined.
    """
    if length <= 0:
        raise ValueError("the sequence length must be positive")
    if chunk_size is not None:
        t = chunk_size
    elif length <= _SINGLE_CHUNK_MAX_STEPS and step_elems >= _SINGLE_CHUNK_MIN_STEP:
        t = length
    else:
        t = round(math.sqrt(length))
    t = max(1, min(int(t), length))
    nc = -(-length // t)
    return -(-length // nc), nc  # same nc, shortest T


def sequential_forward(length: int, n: int, step_elems: int, chunk_size: int | None = None) -> bool:
    """Whether the forward runs step by step in cache-sized blocks rather than chunk-parallel: with at least
    ``_SEQUENTIAL_MIN_STATES`` states, for a single chunk or steps (B·Dm·N elements) of at least
    ``_SEQUENTIAL_MIN_STEP``. With fewer states its [B, Dm, L] transposes cost as much as the state pass itself.
    The backward is chunked either way."""
    wide = chunk_plan(length, chunk_size, step_elems)[1] == 1 or step_elems >= _SEQUENTIAL_MIN_STEP
    return n >= _SEQUENTIAL_MIN_STATES and wide


@dataclass(frozen=True)
class _Plan:
    batch: int
    length: int
    groups: int
    dg: int  # channels per group
    n: int
    t: int  # steps per chunk
    nc: int  # number of chunks

    @property
    def dm(self) -> int:
        return self.groups * self.dg

    @property
    def lp(self) -> int:
        return self.t * self.nc

    def state(self, t: torch.Tensor) -> torch.Tensor:
        """Any [B, L', ...] buffer viewed as [B, L', G, Dg, N]."""
        return t.view(self.batch, -1, self.groups, self.dg, self.n)

    def steps(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[B, Lp, G, Dg, N] → the T step slices [B, nc, G, Dg, N] (views)."""
        return t.view(self.batch, self.nc, self.t, self.groups, self.dg, self.n).unbind(2)


def _tm(t: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """Channel-major [B, Dm, L] → time-major view [B, L, G, Dg, 1] (no copy)."""
    return t.view(plan.batch, plan.groups, plan.dg, plan.length).permute(0, 3, 1, 2).unsqueeze(-1)


def _bc_tm(t: torch.Tensor) -> torch.Tensor:
    """[B, G, N, L] → time-major view [B, L, G, 1, N] (no copy)."""
    return t.permute(0, 3, 1, 2).unsqueeze(-2)


def _padded(plan: _Plan, like: torch.Tensor, fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """An uninitialised [B, Lp, G, Dg, N] buffer with its pad steps set to ``fill``, and its first-L view."""
    buf = like.new_empty(plan.batch, plan.lp, plan.groups, plan.dg, plan.n)
    if plan.lp > plan.length:
        buf[:, plan.length :].fill_(fill)
    return buf, buf[:, : plan.length]


def _decays(dt: torch.Tensor, A: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """a = exp(Δ ⊗ A) [B, Lp, G, Dg, N] (pad steps: 1) from Δ [B, Dm, L] and A [Dm, N]."""
    a, body = _padded(plan, dt, 0.0)
    torch.mul(_tm(dt, plan), A.view(plan.groups, plan.dg, plan.n), out=body)
    return a.exp_()


def _drives(v: torch.Tensor, bc: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """x = v ⊗ B (or gy ⊗ C) [B, Lp, G, Dg, N] (pad steps: 0) from v [B, Dm, L] and B [B, G, N, L]."""
    x, body = _padded(plan, v, 0.0)
    torch.mul(_tm(v, plan), _bc_tm(bc).contiguous(), out=body)  # a contiguous B/C (small) is ~3× faster here
    return x


def _chunk_sums(dt: torch.Tensor, plan: _Plan, skip_first: bool) -> torch.Tensor:
    """Σ_{t∈c} Δ_t per chunk (optionally leaving out each chunk's first step): [B, nc, Dm]."""
    p, start = plan, int(skip_first)
    full = p.length // p.t
    sums = dt.new_zeros(p.batch, p.dm, p.nc)
    if full:
        sums[:, :, :full] = dt[:, :, : full * p.t].reshape(p.batch, p.dm, full, p.t)[..., start:].sum(-1)
    if full < p.nc:
        sums[:, :, full] = dt[:, :, full * p.t + start :].sum(-1)
    return sums.transpose(1, 2)


def _chunk_decays(dt: torch.Tensor, A: torch.Tensor, plan: _Plan, skip_first: bool = False) -> torch.Tensor:
    """P_c = exp(A·Σ_{t∈c} Δ_t) = Π_{t∈c} a_t (optionally without each first step): [B, nc, G, Dg, N]."""
    sums = _chunk_sums(dt, plan, skip_first)
    return plan.state(torch.exp(sums.unsqueeze(-1) * A))


def _local_ends(a: tuple[torch.Tensor, ...], x: tuple[torch.Tensor, ...], reverse: bool) -> torch.Tensor:
    """Each chunk's end state of ``h_t = a_t h_{t-1} + x_t`` from zero, or (reverse) its start value of
    ``g_t = a_{t+1} g_{t+1} + x_t`` with nothing coming from the right. Returns [B, nc, G, Dg, N]."""
    order = range(len(x) - 2, -1, -1) if reverse else range(1, len(x))
    s = (x[-1] if reverse else x[0]).clone()
    spare = torch.empty_like(s)
    for i in order:
        torch.addcmul(x[i], a[i + 1] if reverse else a[i], s, out=spare)
        s, spare = spare, s
    return s


def _run_(a: tuple[torch.Tensor, ...], x: tuple[torch.Tensor, ...], start: torch.Tensor, reverse: bool) -> None:
    """In place: every chunk of x becomes its recurrence, started from the carried-in state ``start``."""
    if reverse:
        x[-1].add_(start)
        for i in range(len(x) - 2, -1, -1):
            x[i].addcmul_(a[i + 1], x[i + 1])
    else:
        x[0].addcmul_(a[0], start)
        for i in range(1, len(x)):
            x[i].addcmul_(a[i], x[i - 1])


def _scan_chunks(p: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Inclusive ``H_c = p_c·H_{c-1} + e_c`` (H_{-1} = 0) along dim 1 of [B, nc, ...] tensors.

    A plain loop for few chunks, else a Hillis–Steele doubling scan (log2(nc) steps; products of decays only).
    """
    nc = e.shape[1]
    if nc < _DOUBLING_MIN_CHUNKS:
        h = e.clone()
        for c in range(1, nc):
            h[:, c].addcmul_(p[:, c], h[:, c - 1])
        return h
    h, p = e.clone(), p.clone()
    h2, p2 = torch.empty_like(h), torch.empty_like(p)
    k = 1
    while k < nc:
        h2[:, :k] = h[:, :k]
        torch.addcmul(h[:, k:], p[:, k:], h[:, :-k], out=h2[:, k:])
        if 2 * k < nc:
            p2[:, :k] = p[:, :k]
            torch.mul(p[:, k:], p[:, :-k], out=p2[:, k:])
            p, p2 = p2, p
        h, h2 = h2, h
        k *= 2
    return h


def _forward_carries(a_steps, x_steps, dt, A, plan: _Plan) -> torch.Tensor:
    """The state carried into each chunk, h_in [B, nc, G, Dg, N] (zero for the first)."""
    if plan.nc == 1:
        return torch.zeros_like(x_steps[0])
    ends = _local_ends(a_steps, x_steps, reverse=False)
    states = _scan_chunks(_chunk_decays(dt, A, plan), ends)
    h_in = torch.zeros_like(states)
    h_in[:, 1:] = states[:, :-1]
    return h_in


def _reverse_carries(a_steps, g_steps, skip: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """The adjoint entering each chunk's last step from the next chunk, [B, nc, G, Dg, N] (zero for the last).

    With V_c the adjoint at chunk c's first step: V_c = start_c + R_c·first_{c+1}·V_{c+1}, where R_c is the
    product of a over chunk c without its first step and first_c = a at chunk c's first step.
    """
    if plan.nc == 1:
        return torch.zeros_like(g_steps[0])
    starts = _local_ends(a_steps, g_steps, reverse=True)
    first = a_steps[0]
    coeff = skip.clone()
    coeff[:, :-1] *= first[:, 1:]
    v = _scan_chunks(coeff.flip(1), starts.flip(1)).flip(1)
    k_in = torch.zeros_like(v)
    k_in[:, :-1] = first[:, 1:] * v[:, 1:]
    return k_in


def _nat(t: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """Time-major [B, Lp, G, Dg, 1] → channel-major view [B, G, Dg, L] (no copy; read it, never write into it:
    strided writes are several times slower than strided reads)."""
    return t[:, : plan.length].squeeze(-1).permute(0, 2, 3, 1)


def _contract(h: torch.Tensor, bc: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """y[b, d, t] = Σ_n h[b, t, d, n] · C[b, g(d), n, t], from time-major h → channel-major [B, Dm, L]."""
    p = plan
    if p.n == 1:  # read h transposed, write y contiguous
        return torch.mul(_nat(h, p), bc.view(p.batch, p.groups, 1, p.length)).view(p.batch, p.dm, p.length)
    if p.lp > p.length:  # pad C instead of slicing h, which would copy h
        bc = torch.cat([bc, bc.new_zeros(*bc.shape[:-1], p.lp - p.length)], dim=-1)
    y = torch.einsum("blgdn,bgnl->bgdl", h, bc)  # [B, G, Dg, Lp]: einsum writes channel-major directly
    return y.reshape(p.batch, p.dm, p.lp)[..., : p.length].contiguous()


def _blocks(length: int, parts: int = 4) -> list[tuple[int, int]]:
    """Split range(length) into ``parts`` contiguous blocks, so products are never materialised at full size."""
    step = -(-length // parts)
    return [(lo, min(lo + step, length)) for lo in range(0, length, step)]


def _reduce_dg(factors: tuple[torch.Tensor, ...], x: torch.Tensor, plan: _Plan) -> torch.Tensor:
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


def _weighted_n_sum(x: torch.Tensor, A: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """r[b, d, t] = Σ_n x[b, t, d, n] · A[d, n] from time-major x → channel-major [B, Dm, L] (blockwise in t)."""
    p = plan
    a5 = A.view(p.groups, p.dg, p.n)
    if p.n == 1:
        return torch.mul(_nat(x, p), a5).view(p.batch, p.dm, p.length)
    r = x.new_empty(p.batch, p.groups, p.dg, p.length)
    for lo, hi in _blocks(p.length):
        r[..., lo:hi] = (x[:, lo:hi] * a5).sum(-1).permute(0, 2, 3, 1)
    return r.view(p.batch, p.dm, p.length)


def _gate_grad(h, u, C, D, z, g_out, plan: _Plan) -> torch.Tensor:
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


def _delta(delta: torch.Tensor, delta_bias: torch.Tensor | None, softplus: bool) -> torch.Tensor:
    """Δ = softplus(δ + δ_bias) (softplus optional): [B, Dm, L]."""
    pre = delta if delta_bias is None else delta + delta_bias.unsqueeze(-1)
    return F.softplus(pre) if softplus else pre


def _time_major(x: torch.Tensor) -> torch.Tensor:
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
    dt: torch.Tensor,
    u: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    plan: _Plan,
    keep_carries: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
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


def _decays_and_drives(dt: torch.Tensor, u: torch.Tensor, A: torch.Tensor, B: torch.Tensor, plan: _Plan):
    """(a, x): decays exp(Δ ⊗ A) and drives (Δ·u) ⊗ B, [B, Lp, G, Dg, N] each (the Δ·u temporary is freed first)."""
    x = _drives(dt * u, B, plan)
    return _decays(dt, A, plan), x


def _chunked_forward(
    dt: torch.Tensor, u: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, plan: _Plan
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1–5 of the module docstring. Returns y = Σ_n C·h [B, Dm, L], the last state [B, Dm, N] and the
    carried-in states h_in [B, nc, G, Dg, N]."""
    a, h = _decays_and_drives(dt, u, A, B, plan)
    a_s, h_s = plan.steps(a), plan.steps(h)
    h_in = _forward_carries(a_s, h_s, dt, A, plan)
    _run_(a_s, h_s, h_in, reverse=False)
    del a, a_s, h_s
    last = h[:, -1].reshape(plan.batch, plan.dm, plan.n).clone()
    return _contract(h, C, plan), last, h_in


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
        plan = _Plan(batch, length, B.shape[1], dm // B.shape[1], A.shape[1], t, nc)
        dt = _delta(delta, delta_bias, delta_softplus)
        keep = keep_carries and any(ctx.needs_input_grad[:8])  # a backward may follow: record the chunk carries
        if sequential_forward(length, A.shape[1], step, chunk_size):
            with _one_thread_if(u.device.type == "cpu" and step < _PARALLEL_GRAIN):
                y, last, h_in = _sequential_forward(dt, u, A, B, C, plan, keep)
            out = y.permute(1, 2, 0).contiguous()  # [L, B, Dm] → [B, Dm, L]
        else:
            out, last, h_in = _chunked_forward(dt, u, A, B, C, plan)
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
        u, dt, A, B, C, D, z, h_in = ctx.saved_tensors
        p: _Plan = ctx.plan
        g_out = torch.zeros_like(u) if g_out is None else g_out.to(u.dtype).contiguous()

        # Recompute decays and states from the saved carries.
        a, h = _decays_and_drives(dt, u, A, B, p)
        a_s, h_s = p.steps(a), p.steps(h)
        _run_(a_s, h_s, h_in, reverse=False)
        skip = _chunk_decays(dt, A, p, skip_first=True)

        g_z = _gate_grad(h, u, C, D, z, g_out, p) if z is not None else None
        g_y = g_out * F.silu(z) if z is not None else g_out  # ∂L/∂(Σ_n C·h + D·u)
        g_D = _dot_bl(g_y, u) if D is not None else None
        g_C = _reduce_dg((g_y,), h, p)
        _shift_mul_(a_s, h_s)  # h now holds a_t·h_{t-1} = ∂h_t/∂(Δ_t A)

        # Adjoint g_t = C_t·gy_t + a_{t+1}·g_{t+1}; ∂L/∂h_{L-1} enters at the last pad step and carries through.
        g = _drives(g_y, C, p)
        if g_last is not None:
            g[:, -1] += g_last.to(g.dtype).view(p.batch, p.groups, p.dg, p.n)
        g_s = p.steps(g)
        _run_(a_s, g_s, _reverse_carries(a_s, g_s, skip, p), reverse=True)
        del a, a_s, h_s, g_s
        gl = h.mul_(g)  # ∂L/∂(Δ A), [B, Lp, G, Dg, N]
        del h

        g_B = _reduce_dg((dt, u), g, p)
        q = _contract(g, B, p)  # Σ_n g·B = ∂L/∂(Δ·u), channel-major
        del g

        g_dt = _weighted_n_sum(gl, A, p).addcmul_(q, u)
        g_A = gl[:, : p.length].mul_(_tm(dt, p)).sum((0, 1)).reshape(p.dm, p.n)
        del gl
        g_u = q.mul_(dt)
        if D is not None:
            g_u.addcmul_(g_y, D.unsqueeze(-1))
        if ctx.delta_softplus:  # dΔ/dδ = σ(δ + δ_bias) = 1 − exp(−Δ)
            g_dt.mul_(torch.expm1(-dt).neg_())
        g_bias = g_dt.sum((0, 2)) if ctx.has_bias else None
        return g_u, g_dt, g_A, g_B, g_C, g_D, g_z, g_bias, None, None, None
