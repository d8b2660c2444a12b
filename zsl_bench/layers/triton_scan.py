"""The selective scan as Triton kernels, forward and backward: JIT-compiled on first use, no build step.

The only module that imports ``triton``; :mod:`zsl_bench.layers.selective_scan` imports it lazily, for CUDA tensors
(or when forced with ``ZSL_BENCH_SCAN=triton``). Under ``TRITON_INTERPRET=1`` (set before this module is imported)
the same kernels run on CPU tensors through Triton's interpreter, which is how CI tests them.

Design (simple first). One program per (batch b, group g, block of ``BLOCK_D`` channels of that group), so B_t and
C_t are one ``[N]`` vector per step for the whole block. The state ``h [BLOCK_D, BLOCK_N]`` lives in registers in
float32 whatever the input dtype, and the program walks L step by step:

    Δ = softplus(δ + δ_bias);  h = exp(Δ·A)·h + (Δ·u)·B_t;  y = Σ_n C_t·h + D·u;  out = y·SiLU(z)

Every step is the plain recurrence (decays in [0, 1], no exp of cumulative sums), so strong decays are as stable as
the float64 loop. The forward stores the state entering each chunk of ``chunk`` steps, ``h_in [B, nc, D, N]``.

The backward walks the chunks in reverse. For each it recomputes the chunk's states from ``h_in`` into a per-program
workspace ``[chunk, BLOCK_D, BLOCK_N]`` (h_{t-1} for every step), then runs the adjoint
``r_t = C_t·gy_t + a_{t+1}·r_{t+1}`` (r starts from ∂L/∂h_{L-1}) backwards through it. Per-channel gradients (u, δ, z)
are stored per step, A and D accumulate in registers, and the B / C gradients — sums over the channels of a group —
are written per program and summed over the blocks of a group afterwards (deterministic, no atomics).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

__all__ = ["TritonScanFn", "launch_plan", "triton_selective_scan"]

DEFAULT_CHUNK = 128  # steps between saved states: h_in is L/chunk states, the backward workspace chunk states


# ----------------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------------
@triton.jit
def _softplus(x):
    """log(1 + eˣ) = max(x, 0) + log1p(e^-|x|), with log1p(y) = y·log(1 + y) / ((1 + y) − 1) (Goldberg), accurate to a
    few ulp: Δ multiplies A, so its relative error is amplified |Δ·A| times in the decay."""
    y = tl.exp(-tl.abs(x))
    w = 1.0 + y
    log1p = tl.where(w == 1.0, y, y * tl.log(w) / tl.where(w == 1.0, 1.0, w - 1.0))
    return tl.maximum(x, 0.0) + log1p


@triton.jit
def _step_inputs(u_ptr, delta_ptr, b_ptr, row, bc_row, t, A, bias, mask_d, mask_n, HAS_BIAS: tl.constexpr,
                 SOFTPLUS: tl.constexpr):  # fmt: skip
    """One step's u, δ + δ_bias, Δ [BLOCK_D], B_t [BLOCK_N], decay a and drive x [BLOCK_D, BLOCK_N]."""
    u = tl.load(u_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
    raw = tl.load(delta_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw = raw + bias
    dt = _softplus(raw) if SOFTPLUS else raw
    bt = tl.load(b_ptr + bc_row + t, mask=mask_n, other=0.0).to(tl.float32)
    a = tl.exp(dt[:, None] * A)
    x = (dt * u)[:, None] * bt[None, :]
    return u, raw, dt, bt, a, x


@triton.jit
def _program_coords(dm, length, dg, n_state, nblk, groups, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's batch b, group g, block j, channels d [BLOCK_D], states n [BLOCK_N], masks and row offsets."""
    b = tl.program_id(0)
    pid = tl.program_id(1)
    g = pid // nblk
    j = pid % nblk
    local = j * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = local < dg
    d = g * dg + local
    n = tl.arange(0, BLOCK_N)
    mask_n = n < n_state
    row = (b * dm + d).to(tl.int64) * length  # [B, D, L] rows
    bc_row = ((b * groups + g) * n_state + n).to(tl.int64) * length  # [B, G, N, L] rows
    return b, g, j, d, n, mask_d, mask_n, row, bc_row


@triton.jit
def _scan_fwd_kernel(u_ptr, delta_ptr, a_ptr, b_ptr, c_ptr, dskip_ptr, z_ptr, bias_ptr, out_ptr, last_ptr, hin_ptr,
                     dm, length, dg, n_state, nblk, groups, chunk, n_chunks, HAS_D: tl.constexpr,
                     HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, SAVE: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
    """out [B, D, L], last state [B, D, N] and (``SAVE``) the states entering each chunk, h_in [B, nc, D, N]."""
    b, _g, _j, d, n, mask_d, mask_n, row, bc_row = _program_coords(
        dm, length, dg, n_state, nblk, groups, BLOCK_D, BLOCK_N
    )
    mask_dn = mask_d[:, None] & mask_n[None, :]
    dn = d[:, None] * n_state + n[None, :]
    A = tl.load(a_ptr + dn, mask=mask_dn, other=0.0)
    bias = tl.load(bias_ptr + d, mask=mask_d, other=0.0) if HAS_BIAS else 0.0
    dskip = tl.load(dskip_ptr + d, mask=mask_d, other=0.0) if HAS_D else 0.0
    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for c in range(0, n_chunks):
        if SAVE:
            tl.store(hin_ptr + (b * n_chunks + c).to(tl.int64) * dm * n_state + dn, h, mask=mask_dn)
        t0 = c * chunk
        t1 = tl.minimum(t0 + chunk, length)
        for t in range(t0, t1):
            u, _raw, _dt, _bt, a, x = _step_inputs(
                u_ptr, delta_ptr, b_ptr, row, bc_row, t, A, bias, mask_d, mask_n, HAS_BIAS, SOFTPLUS
            )
            h = a * h + x
            ct = tl.load(c_ptr + bc_row + t, mask=mask_n, other=0.0).to(tl.float32)
            y = tl.sum(h * ct[None, :], axis=1)
            if HAS_D:
                y += dskip * u
            if HAS_Z:
                zt = tl.load(z_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
                y = y * zt * tl.sigmoid(zt)
            tl.store(out_ptr + row + t, y.to(out_ptr.dtype.element_ty), mask=mask_d)
    tl.store(last_ptr + b.to(tl.int64) * dm * n_state + dn, h, mask=mask_dn)


@triton.jit
def _recompute_chunk(ws, h, t0, t1, u_ptr, delta_ptr, b_ptr, row, bc_row, A, bias, mask_d, mask_n,
                     HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr,
                     BLOCK_N: tl.constexpr):  # fmt: skip
    """The states of steps [t0, t1) again, from h = h_{t0-1}: ws[t - t0] = h_{t-1} [BLOCK_D, BLOCK_N]."""
    for t in range(t0, t1):
        tl.store(ws + (t - t0) * BLOCK_D * BLOCK_N, h)
        _u, _raw, _dt, _bt, a, x = _step_inputs(
            u_ptr, delta_ptr, b_ptr, row, bc_row, t, A, bias, mask_d, mask_n, HAS_BIAS, SOFTPLUS
        )
        h = a * h + x


@triton.jit
def _gate_grad(z_ptr, gz_ptr, row, t, gy, h, ct, u, dskip, mask_d, HAS_D: tl.constexpr):
    """Through out_t = y_t·SiLU(z_t), from gy = ∂L/∂out_t [BLOCK_D] and h_t: stores ∂L/∂z_t, returns ∂L/∂y_t."""
    zt = tl.load(z_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
    sig = tl.sigmoid(zt)
    y = tl.sum(h * ct[None, :], axis=1)
    if HAS_D:
        y += dskip * u
    tl.store(gz_ptr + row + t, gy * y * sig * (1.0 + zt * (1.0 - sig)), mask=mask_d)
    return gy * zt * sig


@triton.jit
def _channel_grads(r, gl, bt, A, u, dt, raw, gy, dskip, g_d, HAS_D: tl.constexpr, SOFTPLUS: tl.constexpr):
    """(∂L/∂u_t, ∂L/∂δ_t, g_d + ∂L/∂D from step t) [BLOCK_D], from r = ∂L/∂h_t and gl = ∂L/∂(Δ_t·A)
    [BLOCK_D, BLOCK_N] and gy = ∂L/∂y_t."""
    q = tl.sum(r * bt[None, :], axis=1)  # ∂L/∂(Δ_t·u_t)
    g_dt = tl.sum(gl * A, axis=1) + q * u
    g_u = q * dt
    if HAS_D:
        g_u += gy * dskip
        g_d += gy * u
    if SOFTPLUS:
        g_dt = g_dt * tl.sigmoid(raw)
    return g_u, g_dt, g_d


@triton.jit
def _scan_bwd_kernel(u_ptr, delta_ptr, a_ptr, b_ptr, c_ptr, dskip_ptr, z_ptr, bias_ptr, gout_ptr, glast_ptr, hin_ptr,
                     ws_ptr, gu_ptr, gdelta_ptr, gz_ptr, ga_ptr, gd_ptr, gb_ptr, gc_ptr,
                     dm, length, dg, n_state, nblk, groups, chunk, n_chunks, HAS_D: tl.constexpr,
                     HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_GLAST: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
    """Gradients: u, δ (before softplus), z [B, D, L] (float32); per-batch A [B, D, N] and D [B, D]; per-block
    B and C [B, G, nblk, N, L]. ``ws``: [programs, chunk, BLOCK_D, BLOCK_N] float32 scratch."""
    b, g, j, d, n, mask_d, mask_n, row, bc_row = _program_coords(
        dm, length, dg, n_state, nblk, groups, BLOCK_D, BLOCK_N
    )
    mask_dn = mask_d[:, None] & mask_n[None, :]
    dn = d[:, None] * n_state + n[None, :]
    A = tl.load(a_ptr + dn, mask=mask_dn, other=0.0)
    bias = tl.load(bias_ptr + d, mask=mask_d, other=0.0) if HAS_BIAS else 0.0
    dskip = tl.load(dskip_ptr + d, mask=mask_d, other=0.0) if HAS_D else 0.0
    tile = tl.arange(0, BLOCK_D)[:, None] * BLOCK_N + n[None, :]
    ws = ws_ptr + (b * tl.num_programs(1) + tl.program_id(1)).to(tl.int64) * chunk * BLOCK_D * BLOCK_N + tile
    part = ((b * groups + g) * nblk + j).to(tl.int64) * n_state * length + n * length  # [B, G, nblk, N, L] rows
    if HAS_GLAST:
        carry = tl.load(glast_ptr + b.to(tl.int64) * dm * n_state + dn, mask=mask_dn, other=0.0)
    else:
        carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)  # a_{t+1}·r_{t+1}, the adjoint from the right
    g_a = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    g_d = tl.zeros([BLOCK_D], dtype=tl.float32)
    for ci in range(0, n_chunks):
        c = n_chunks - 1 - ci
        t0 = c * chunk
        t1 = tl.minimum(t0 + chunk, length)
        h = tl.load(hin_ptr + (b * n_chunks + c).to(tl.int64) * dm * n_state + dn, mask=mask_dn, other=0.0)
        _recompute_chunk(ws, h, t0, t1, u_ptr, delta_ptr, b_ptr, row, bc_row, A, bias, mask_d, mask_n, HAS_BIAS,
                         SOFTPLUS, BLOCK_D, BLOCK_N)  # fmt: skip
        tl.debug_barrier()
        for i in range(0, t1 - t0):
            t = t1 - 1 - i
            h_prev = tl.load(ws + (t - t0) * BLOCK_D * BLOCK_N)
            u, raw, dt, bt, a, x = _step_inputs(
                u_ptr, delta_ptr, b_ptr, row, bc_row, t, A, bias, mask_d, mask_n, HAS_BIAS, SOFTPLUS
            )
            h = a * h_prev + x
            ct = tl.load(c_ptr + bc_row + t, mask=mask_n, other=0.0).to(tl.float32)
            gy = tl.load(gout_ptr + row + t, mask=mask_d, other=0.0).to(tl.float32)
            if HAS_Z:
                gy = _gate_grad(z_ptr, gz_ptr, row, t, gy, h, ct, u, dskip, mask_d, HAS_D)  # ∂L/∂y
            r = ct[None, :] * gy[:, None] + carry  # ∂L/∂h_t
            gl = r * a * h_prev  # ∂L/∂(Δ_t·A)
            g_u, g_dt, g_d = _channel_grads(r, gl, bt, A, u, dt, raw, gy, dskip, g_d, HAS_D, SOFTPLUS)
            g_a += gl * dt[:, None]
            tl.store(gu_ptr + row + t, g_u, mask=mask_d)
            tl.store(gdelta_ptr + row + t, g_dt, mask=mask_d)
            tl.store(gb_ptr + part + t, tl.sum(r * (dt * u)[:, None], axis=0), mask=mask_n)
            tl.store(gc_ptr + part + t, tl.sum(h * gy[:, None], axis=0), mask=mask_n)
            carry = a * r
        tl.debug_barrier()  # the next chunk overwrites ws
    tl.store(ga_ptr + b.to(tl.int64) * dm * n_state + dn, g_a, mask=mask_dn)
    tl.store(gd_ptr + b.to(tl.int64) * dm + d, g_d, mask=mask_d)


# ----------------------------------------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------------------------------------
class LaunchPlan(NamedTuple):
    """Block sizes and grid of one scan: programs = (batch, groups · nblk)."""

    block_d: int
    block_n: int
    nblk: int
    num_warps: int


def launch_plan(dg: int, n: int) -> LaunchPlan:
    """``BLOCK_N`` = N rounded up to a power of two; ``BLOCK_D`` channels of one group so that a program's state is
    about 256 elements (≤ 64 channels); one warp per 64 state elements, 1 to 4."""
    block_n = triton.next_power_of_2(n)
    block_d = max(1, min(64, 256 // block_n, triton.next_power_of_2(dg)))
    return LaunchPlan(block_d, block_n, triton.cdiv(dg, block_d), max(1, min(4, block_d * block_n // 64)))


def _flags(D, z, delta_bias, softplus: bool) -> dict[str, bool]:
    return {"HAS_D": D is not None, "HAS_Z": z is not None, "HAS_BIAS": delta_bias is not None, "SOFTPLUS": softplus}


def scan_forward(u, delta, A, B, C, *, D, z, delta_bias, softplus: bool, chunk: int, save: bool):
    """(out [B, D, L] in u's dtype, last state [B, D, N] float32, h_in [B, nc, D, N] float32 or None).

    u, delta, z: contiguous [B, D, L] (float32 / bfloat16 / float16); A [D, N], D, delta_bias [D] float32;
    B, C contiguous grouped [B, G, N, L].
    """
    batch, dm, length = u.shape
    groups, n = B.shape[1], A.shape[1]
    plan = launch_plan(dm // groups, n)
    nc = triton.cdiv(length, chunk)
    out = torch.empty_like(u)
    last = u.new_empty(batch, dm, n, dtype=torch.float32)
    h_in = u.new_empty(batch, nc, dm, n, dtype=torch.float32) if save else last
    _scan_fwd_kernel[(batch, groups * plan.nblk)](
        u, delta, A, B, C, u if D is None else D, u if z is None else z, u if delta_bias is None else delta_bias,
        out, last, h_in, dm, length, dm // groups, n, plan.nblk, groups, chunk, nc, SAVE=save,
        BLOCK_D=plan.block_d, BLOCK_N=plan.block_n, num_warps=plan.num_warps, **_flags(D, z, delta_bias, softplus),
    )  # fmt: skip
    return out, last, h_in if save else None


def scan_backward(saved, g_out, g_last, softplus: bool, chunk: int):
    """Float32 gradients (u, δ, A, B, C, D, z, δ_bias) of :func:`scan_forward`'s inputs; B and C grouped."""
    u, delta, A, B, C, D, z, delta_bias, h_in = saved
    batch, dm, length = u.shape
    groups, n = B.shape[1], A.shape[1]
    plan = launch_plan(dm // groups, n)
    nc = h_in.shape[1]
    f32 = {"dtype": torch.float32, "device": u.device}
    g_u, g_delta = torch.empty(u.shape, **f32), torch.empty(u.shape, **f32)
    g_z = torch.empty(u.shape, **f32) if z is not None else g_u
    g_a, g_d = torch.empty(batch, dm, n, **f32), torch.empty(batch, dm, **f32)
    g_b, g_c = (torch.empty(batch, groups, plan.nblk, n, length, **f32) for _ in range(2))
    ws = torch.empty(batch * groups * plan.nblk * chunk * plan.block_d * plan.block_n, **f32)
    _scan_bwd_kernel[(batch, groups * plan.nblk)](
        u, delta, A, B, C, u if D is None else D, u if z is None else z, u if delta_bias is None else delta_bias,
        g_out, g_u if g_last is None else g_last, h_in, ws, g_u, g_delta, g_z, g_a, g_d, g_b, g_c,
        dm, length, dm // groups, n, plan.nblk, groups, chunk, nc, HAS_GLAST=g_last is not None,
        BLOCK_D=plan.block_d, BLOCK_N=plan.block_n, num_warps=plan.num_warps, **_flags(D, z, delta_bias, softplus),
    )  # fmt: skip
    g_bias = g_delta.sum((0, 2)) if delta_bias is not None else None
    return (g_u, g_delta, g_a.sum(0), g_b.sum(2), g_c.sum(2), g_d.sum(0) if D is not None else None,
            g_z if z is not None else None, g_bias)  # fmt: skip


class TritonScanFn(torch.autograd.Function):
    """``apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk, keep)`` → (out [B, D, L] in u's dtype,
    last state [B, D, N] float32). B, C grouped [B, G, N, L]; A, D, delta_bias float32; ``keep``: a backward may
    follow (record the chunk states)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk, keep):
        u, delta, B, C = u.contiguous(), delta.contiguous(), B.contiguous(), C.contiguous()
        z = z.contiguous() if z is not None else None
        out, last, h_in = scan_forward(
            u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, softplus=delta_softplus, chunk=chunk, save=keep
        )
        ctx.softplus, ctx.chunk = delta_softplus, chunk
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, h_in)
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out, g_last):
        saved = ctx.saved_tensors
        if saved[-1] is None:
            raise RuntimeError("the Triton scan ran without recording its states; call it with keep=True")
        u = saved[0]
        g_out = torch.zeros_like(u) if g_out is None else g_out.contiguous()
        g_last = None if g_last is None else g_last.float().contiguous()
        grads = scan_backward(saved, g_out, g_last, ctx.softplus, ctx.chunk)
        cast = [None if gr is None else gr.to(t.dtype) for gr, t in zip(grads, saved[:8], strict=True)]
        return (*cast, None, None, None)


def triton_selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    *,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~zsl_bench.layers.selective_scan.selective_scan`'s semantics on the Triton kernels: (out [B, D, L] in
    u's dtype, last state [B, D, N] float32). B, C are [B, N, L] or grouped [B, G, N, L]; float64 inputs are
    computed in float32 (out keeps u's dtype). The options after C are keyword-only."""
    work = torch.float32 if u.dtype == torch.float64 else None

    def cast(t: torch.Tensor | None, to: torch.dtype | None) -> torch.Tensor | None:
        return t if t is None or to is None else t.to(to)

    grouped = [t.unsqueeze(1) if t.dim() == 3 else t for t in (B, C)]
    args = [cast(u, work), cast(delta, work), cast(A, torch.float32), *(cast(t, work) for t in grouped)]
    args += [cast(D, torch.float32), cast(z, work), cast(delta_bias, torch.float32)]
    keep = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args)
    out, last = TritonScanFn.apply(*args, bool(delta_softplus), int(chunk_size or DEFAULT_CHUNK), keep)
    return out.to(u.dtype), last
