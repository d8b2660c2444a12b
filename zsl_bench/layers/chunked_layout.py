"""The data layout of the chunked selective scan and the recurrence primitives its forward and backward share.

Used by :mod:`zsl_bench.layers.chunked_scan` (planning: :func:`chunk_plan`, :func:`sequential_forward`),
:mod:`zsl_bench.layers.chunked_forward` and :mod:`zsl_bench.layers.chunked_grad`; ``benchmarks/scan.py`` reads the
plan through :mod:`zsl_bench.layers.chunked_scan`.

Work happens time-major, ``[B, Lp, G, Dg, N]`` (Dm = G·Dg), so one time step of every chunk is a contiguous slice.
L is padded to ``Lp = nc·T``; pad steps have Δ = 0 (decay 1, no input), so the state just carries through them.
:class:`ScanPlan` holds these sizes; the helpers here build decays and drives in that layout, run the recurrence
inside chunks (:func:`local_ends`, :func:`run_chunks_`), link chunks (:func:`scan_chunks`) and contract states
with C (:func:`contract`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "ScanPlan",
    "channel_major_view",
    "chunk_decays",
    "chunk_plan",
    "contract",
    "decays_and_drives",
    "drives",
    "local_ends",
    "run_chunks_",
    "scan_chunks",
    "sequential_forward",
    "time_major_view",
]

_DOUBLING_MIN_CHUNKS = 16  # below this many chunks the carry loop is cheaper than the doubling scan
_SINGLE_CHUNK_MAX_STEPS = 256  # one chunk (a plain loop over L) for sequences up to this long …
_SINGLE_CHUNK_MIN_STEP = 1024  # … when one step is at least this many elements (loop overhead amortised)
_SEQUENTIAL_MIN_STEP = 2048  # forward: steps this wide run the sequential, cache-blocked forward at any length …
_SEQUENTIAL_MIN_STATES = 4  # … given this many states (N); see sequential_forward


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
class ScanPlan:
    """The sizes of one scan and its chunking: B, L, G groups of Dg channels, N states, nc chunks of T steps."""

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


def time_major_view(t: torch.Tensor, plan: ScanPlan) -> torch.Tensor:
    """Channel-major [B, Dm, L] → time-major view [B, L, G, Dg, 1] (no copy)."""
    return t.view(plan.batch, plan.groups, plan.dg, plan.length).permute(0, 3, 1, 2).unsqueeze(-1)


def _bc_tm(t: torch.Tensor) -> torch.Tensor:
    """[B, G, N, L] → time-major view [B, L, G, 1, N] (no copy)."""
    return t.permute(0, 3, 1, 2).unsqueeze(-2)


def _padded(plan: ScanPlan, like: torch.Tensor, fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """An uninitialised [B, Lp, G, Dg, N] buffer with its pad steps set to ``fill``, and its first-L view."""
    buf = like.new_empty(plan.batch, plan.lp, plan.groups, plan.dg, plan.n)
    if plan.lp > plan.length:
        buf[:, plan.length :].fill_(fill)
    return buf, buf[:, : plan.length]


def _decays(dt: torch.Tensor, A: torch.Tensor, plan: ScanPlan) -> torch.Tensor:
    """a = exp(Δ ⊗ A) [B, Lp, G, Dg, N] (pad steps: 1) from Δ [B, Dm, L] and A [Dm, N]."""
    a, body = _padded(plan, dt, 0.0)
    torch.mul(time_major_view(dt, plan), A.view(plan.groups, plan.dg, plan.n), out=body)
    return a.exp_()


def drives(v: torch.Tensor, bc: torch.Tensor, plan: ScanPlan) -> torch.Tensor:
    """x = v ⊗ B (or gy ⊗ C) [B, Lp, G, Dg, N] (pad steps: 0) from v [B, Dm, L] and B [B, G, N, L]."""
    x, body = _padded(plan, v, 0.0)
    bc_tm = _bc_tm(bc).contiguous()  # a contiguous B/C (small) is ~3× faster here
    torch.mul(time_major_view(v, plan), bc_tm, out=body)
    return x


def _chunk_sums(dt: torch.Tensor, plan: ScanPlan, skip_first: bool) -> torch.Tensor:
    """Σ_{t∈c} Δ_t per chunk (optionally leaving out each chunk's first step): [B, nc, Dm]."""
    p, start = plan, int(skip_first)
    full = p.length // p.t
    sums = dt.new_zeros(p.batch, p.dm, p.nc)
    if full:
        sums[:, :, :full] = dt[:, :, : full * p.t].reshape(p.batch, p.dm, full, p.t)[..., start:].sum(-1)
    if full < p.nc:
        sums[:, :, full] = dt[:, :, full * p.t + start :].sum(-1)
    return sums.transpose(1, 2)


def chunk_decays(dt: torch.Tensor, A: torch.Tensor, plan: ScanPlan, skip_first: bool = False) -> torch.Tensor:
    """P_c = exp(A·Σ_{t∈c} Δ_t) = Π_{t∈c} a_t (optionally without each first step): [B, nc, G, Dg, N]."""
    sums = _chunk_sums(dt, plan, skip_first)
    return plan.state(torch.exp(sums.unsqueeze(-1) * A))


def local_ends(a: tuple[torch.Tensor, ...], x: tuple[torch.Tensor, ...], reverse: bool) -> torch.Tensor:
    """Each chunk's end state of ``h_t = a_t h_{t-1} + x_t`` from zero, or (reverse) its start value of
    ``g_t = a_{t+1} g_{t+1} + x_t`` with nothing coming from the right. Returns [B, nc, G, Dg, N]."""
    order = range(len(x) - 2, -1, -1) if reverse else range(1, len(x))
    s = (x[-1] if reverse else x[0]).clone()
    spare = torch.empty_like(s)
    for i in order:
        torch.addcmul(x[i], a[i + 1] if reverse else a[i], s, out=spare)
        s, spare = spare, s
    return s


def run_chunks_(a: tuple[torch.Tensor, ...], x: tuple[torch.Tensor, ...], start: torch.Tensor, reverse: bool) -> None:
    """In place: every chunk of x becomes its recurrence, started from the carried-in state ``start``."""
    if reverse:
        x[-1].add_(start)
        for i in range(len(x) - 2, -1, -1):
            x[i].addcmul_(a[i + 1], x[i + 1])
    else:
        x[0].addcmul_(a[0], start)
        for i in range(1, len(x)):
            x[i].addcmul_(a[i], x[i - 1])


def scan_chunks(p: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
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


def channel_major_view(t: torch.Tensor, plan: ScanPlan) -> torch.Tensor:
    """Time-major [B, Lp, G, Dg, 1] → channel-major view [B, G, Dg, L] (no copy; read it, never write into it:
    strided writes are several times slower than strided reads)."""
    return t[:, : plan.length].squeeze(-1).permute(0, 2, 3, 1)


def contract(h: torch.Tensor, bc: torch.Tensor, plan: ScanPlan) -> torch.Tensor:
    """y[b, d, t] = Σ_n h[b, t, d, n] · C[b, g(d), n, t], from time-major h → channel-major [B, Dm, L]."""
    p = plan
    if p.n == 1:  # read h transposed, write y contiguous
        y = torch.mul(channel_major_view(h, p), bc.view(p.batch, p.groups, 1, p.length))
        return y.view(p.batch, p.dm, p.length)
    if p.lp > p.length:  # pad C instead of slicing h, which would copy h
        bc = torch.cat([bc, bc.new_zeros(*bc.shape[:-1], p.lp - p.length)], dim=-1)
    y = torch.einsum("blgdn,bgnl->bgdl", h, bc)  # [B, G, Dg, Lp]: einsum writes channel-major directly
    return y.reshape(p.batch, p.dm, p.lp)[..., : p.length].contiguous()


def decays_and_drives(dt: torch.Tensor, u: torch.Tensor, A: torch.Tensor, B: torch.Tensor, plan: ScanPlan):
    """(a, x): decays exp(Δ ⊗ A) and drives (Δ·u) ⊗ B, [B, Lp, G, Dg, N] each (the Δ·u temporary is freed first)."""
    x = drives(dt * u, B, plan)
    return _decays(dt, A, plan), x
