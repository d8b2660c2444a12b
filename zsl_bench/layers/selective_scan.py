"""The selective scan (S6) of Mamba — one public entry point, three implementations — and Mamba's causal conv1d.

Recurrence (docs/model-maths.md#scan-recurrence), per batch b, channel d, state n and time t::

    Δ_t = softplus(δ_t + δ_bias)  (or δ_t + δ_bias without softplus)
    h_t = exp(Δ_t · A[d, n]) · h_{t-1} + Δ_t · B_t[g(d), n] · u_t,    h_{-1} = 0
    y_t = Σ_n C_t[g(d), n] · h_t[n] + D[d] · u_t,   out_t = y_t · SiLU(z_t)

with ``g(d) = d // (Dm / G)`` for grouped B/C ``[B, G, N, L]`` (plain ``[B, N, L]`` is G = 1).

Implementations behind :func:`selective_scan` (``backend=``; :func:`selective_scan_ref` and
:func:`selective_scan_chunked` are it with the backend fixed):

* ``"ref"`` — the O(L) Python loop (float64-capable); tests use it as ground truth.
* ``"torch"`` — autograd function, hand-written backward (:mod:`zsl_bench.layers.chunked_scan`), any device.
* ``"fused"`` — the CPU default: forward and backward as C++ loops compiled on first use
  (:mod:`zsl_bench.layers.fused_scan`, once per machine, cached). Where it cannot be built (no compiler), the
  torch scan runs (one warning per process); ``ZSL_BENCH_FUSED_SCAN=0`` opts out.
* ``"mamba_ssm"`` (old name ``"cuda"``) — ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``, used for
  CUDA tensors when it imports. It is imported lazily, on the first CUDA call only, and any failure falls back to
  the next choice (logged once).
* ``"triton"`` — the Triton kernels of :mod:`zsl_bench.layers.triton_scan` (JIT-compiled on first use, no build
  step): the choice for CUDA tensors when mamba-ssm is missing and ``triton`` imports. Under ``TRITON_INTERPRET=1``
  they also run on CPU tensors (slowly; that is how CI tests them).

``"auto"`` picks, for CUDA tensors, mamba_ssm → triton → torch, and for CPU tensors fused → torch.
``ZSL_BENCH_SCAN=torch|triton|mamba_ssm|fused`` forces the backend of every ``"auto"`` scan of the process (and of
the trials it starts); a forced triton or mamba_ssm that cannot run raises.
:func:`scan_backends_run` counts the scans each backend ran, and :class:`ScanRecord` turns that into the ``scan``
entry of a model's provenance (``summary.json`` ``model_info``).

:func:`causal_conv1d_silu` dispatches the same way to ``causal_conv1d.causal_conv1d_fn``. These two lazy imports
are the only places the optional ``[cuda]`` packages are ever imported. Why the torch scan is stable (it never
exponentiates cumulative sums): :mod:`zsl_bench.layers.chunked_scan`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import NamedTuple

import torch
import torch.nn.functional as F

from zsl_bench.layers import fused_scan
from zsl_bench.layers.chunked_scan import ChunkedScanFn

__all__ = [
    "ScanRecord",
    "auto_backend",
    "causal_conv1d_silu",
    "cuda_kernel_available",
    "scan_backends_run",
    "selective_scan",
    "selective_scan_chunked",
    "selective_scan_ref",
]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "fused", "ref", "triton", "mamba_ssm", "cuda")  # "cuda": the old name of "mamba_ssm"
FORCEABLE = ("torch", "triton", "mamba_ssm", "fused")
SCAN_ENV = "ZSL_BENCH_SCAN"  # one of FORCEABLE: the backend of every "auto" scan
FUSED_ENV = "ZSL_BENCH_FUSED_SCAN"  # "0": "auto" runs the torch scan for CPU tensors ("1", the default: fused)
_RAN: Counter[str] = Counter()  # scans run per backend in this process
_TRITON_BROKEN: list[Exception] = []  # a Triton kernel failed here: "auto" no longer picks it


# ----------------------------------------------------------------------------------------------------------------
# Shared argument handling
# ----------------------------------------------------------------------------------------------------------------
def _work_dtype(u: torch.Tensor) -> torch.dtype:
    """float64 stays float64 (for reference checks); everything else is computed in float32."""
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _check_shapes(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> None:
    """Raise ``ValueError`` unless the shapes follow the selective_scan_fn conventions (real tensors only)."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be [B, D, L]; got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, dm, length = u.shape
    if A.dim() != 2 or A.shape[0] != dm:
        raise ValueError(f"A must be [D, N] with D = {dm}; got {tuple(A.shape)}")
    n = A.shape[1]
    if any(t.is_complex() for t in (u, delta, A, B, C)):
        raise ValueError("complex inputs are not supported")
    for name, t in (("B", B), ("C", C)):
        ok = (t.dim() == 3 and tuple(t.shape) == (batch, n, length)) or (
            t.dim() == 4 and t.shape[0] == batch and t.shape[2:] == (n, length) and dm % t.shape[1] == 0
        )
        if not ok:
            raise ValueError(
                f"{name} must be [B, N, L] or [B, G, N, L] with G dividing D "
                f"(B={batch}, D={dm}, N={n}, L={length}); got {tuple(t.shape)}"
            )


def _grouped(t: torch.Tensor) -> torch.Tensor:
    """[B, N, L] → [B, 1, N, L]; [B, G, N, L] unchanged."""
    return t.unsqueeze(1) if t.dim() == 3 else t


def _discretised_delta(
    delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool, dtype: torch.dtype
) -> torch.Tensor:
    """Δ = softplus(δ + δ_bias) (softplus optional), in ``dtype``: [B, D, L]."""
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype).unsqueeze(-1)
    return F.softplus(delta) if delta_softplus else delta


def _finish(
    y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None, out_dtype: torch.dtype
) -> torch.Tensor:
    """out = (y + D·u) · SiLU(z), cast to the dtype of the original u."""
    if D is not None:
        y = torch.addcmul(y, u, D.to(y.dtype).unsqueeze(-1))
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(out_dtype)


class _ScanArgs(NamedTuple):
    """The tensor arguments of a scan, in selective_scan_fn's order (shapes as in :func:`selective_scan`)."""

    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None
    z: torch.Tensor | None
    delta_bias: torch.Tensor | None
    delta_softplus: bool


# ----------------------------------------------------------------------------------------------------------------
# Sequential reference
# ----------------------------------------------------------------------------------------------------------------
def _scan_ref(x: _ScanArgs) -> tuple[torch.Tensor, torch.Tensor]:
    """The O(L) loop of docs/model-maths.md#scan-reference-loop (autograd through the loop gives the backward): (out
    [B, D, L] in u's
    dtype, last state [B, D, N] in the work dtype), computed in float64 when u is float64, else float32."""
    work = _work_dtype(x.u)
    batch, dm, length = x.u.shape
    uw = x.u.to(work)
    dt = _discretised_delta(x.delta, x.delta_bias, x.delta_softplus, work)
    decay = torch.exp(dt.unsqueeze(-1) * x.A.to(work).unsqueeze(1))  # [B, D, L, N]
    Bw, Cw = x.B.to(work), x.C.to(work)
    if Bw.dim() == 3:  # one B for all channels, as in mamba-ssm's selective_scan_ref
        drive = torch.einsum("bdl,bnl->bdln", dt * uw, Bw)
    else:  # grouped: repeat each group over its channels
        drive = torch.einsum("bdl,bdnl->bdln", dt * uw, Bw.repeat_interleave(dm // Bw.shape[1], dim=1))
    if Cw.dim() == 4:
        Cw = Cw.repeat_interleave(dm // Cw.shape[1], dim=1)  # [B, D, N, L]
    h = uw.new_zeros(batch, dm, x.A.shape[1])
    ys = []
    for t in range(length):
        h = decay[:, :, t] * h + drive[:, :, t]
        if Cw.dim() == 3:
            ys.append(torch.einsum("bdn,bn->bd", h, Cw[:, :, t]))
        else:
            ys.append(torch.einsum("bdn,bdn->bd", h, Cw[:, :, :, t]))
    y = torch.stack(ys, dim=-1) if ys else uw.new_zeros(batch, dm, 0)
    return _finish(y, uw, x.D, x.z, x.u.dtype), h


# ----------------------------------------------------------------------------------------------------------------
# Chunked implementation (the core lives in chunked_scan.py)
# ----------------------------------------------------------------------------------------------------------------
def _scan_torch(x: _ScanArgs, chunk_size: int | None, fused: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunked torch scan (module docstring), on any device: same results as :func:`_scan_ref`. ``fused``:
    the compiled scan for CPU tensors, when it builds."""
    if x.u.shape[-1] == 0:
        return _scan_ref(x)
    work = _work_dtype(x.u)
    u, delta, A, B, C, D, z, delta_bias, softplus = x
    tensors = [None if t is None else t.to(work) for t in (u, delta, A, _grouped(B), _grouped(C), D, z, delta_bias)]
    use_fused = fused and u.device.type == "cpu" and _fused_available()
    fn: type[torch.autograd.Function] = fused_scan.FusedScanFn if use_fused else ChunkedScanFn
    keep = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)  # a backward may follow
    out, last = fn.apply(*tensors, bool(softplus), chunk_size, keep)
    return out.to(u.dtype), last


# ----------------------------------------------------------------------------------------------------------------
# Kernel dispatch and the public entry point
# ----------------------------------------------------------------------------------------------------------------
@functools.cache
def _cuda_scan() -> Callable | None:
    """mamba_ssm's ``selective_scan_fn``, or None when it does not import (logged once)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as exc:  # ImportError, but also triton / ABI / undefined-symbol errors: see
        # docs/cuda-kernels.md#do-not-install-them-on-cpu-machines
        log.warning("mamba_ssm selective_scan_fn unavailable (%s: %s); using the torch scan", type(exc).__name__, exc)
        return None
    return selective_scan_fn


@functools.cache
def _triton_scan() -> ModuleType | None:
    """:mod:`zsl_bench.layers.triton_scan`, or None when ``triton`` does not import or a kernel failed to compile
    (logged once; see :func:`_triton_failed`)."""
    try:
        from zsl_bench.layers import triton_scan
    except Exception as exc:  # not installed, or a broken install
        log.warning("triton unavailable (%s: %s); using the torch scan", type(exc).__name__, exc)
        return None
    return triton_scan


def _triton_failed(exc: Exception) -> None:
    """A Triton kernel failed to compile or launch: log it, and let "auto" skip triton from now on."""
    log.warning("the Triton scan failed (%s: %s); using the torch scan from now on", type(exc).__name__, exc)
    _TRITON_BROKEN.append(exc)


def _fused_available() -> bool:
    return fused_scan.extension() is not None  # builds it on the first call of the process


def _fused_by_default() -> bool:
    """Whether "auto" prefers the compiled scan for CPU tensors: unless ``ZSL_BENCH_FUSED_SCAN=0``, or it was
    already tried here and failed to build (nothing is built by this check)."""
    off = os.environ.get(FUSED_ENV, "").strip() == "0"
    return not off and (not fused_scan.extension_tried() or _fused_available())


def cuda_kernel_available() -> bool:
    """True when CUDA is available and mamba_ssm's kernel imports (this triggers the import)."""
    return torch.cuda.is_available() and _cuda_scan() is not None


def _forced() -> str | None:
    """The backend ``ZSL_BENCH_SCAN`` forces, or None (unset or empty)."""
    name = os.environ.get(SCAN_ENV, "").strip().lower()
    if name and name not in FORCEABLE:
        raise ValueError(f"{SCAN_ENV} must be one of {FORCEABLE}; got {name!r}")
    return name or None


def auto_backend(device: torch.device | str, dtype: torch.dtype = torch.float32) -> str:
    """The backend ``backend="auto"`` runs for tensors of ``dtype`` on ``device``: ``ZSL_BENCH_SCAN`` if set; for
    CUDA, mamba_ssm when it imports, else triton (not for float64) when it imports, else torch; for CPU, fused
    (unless ``ZSL_BENCH_FUSED_SCAN=0`` or it failed to build here), else torch. Imports for CUDA; builds nothing."""
    forced = _forced()
    if forced is not None:
        return forced
    if torch.device(device).type == "cuda":
        if _cuda_scan() is not None:
            return "mamba_ssm"
        if dtype != torch.float64 and not _TRITON_BROKEN and _triton_scan() is not None:
            return "triton"
        return "torch"
    return "fused" if _fused_by_default() else "torch"


def scan_backends_run() -> dict[str, int]:
    """How many scans each backend has run in this process (a copy)."""
    return dict(_RAN)


class ScanRecord:
    """The ``scan`` entry of a model's provenance: ``str()`` names the backends that ran scans since this record was
    made (most used first), or, before any, what ``"auto"`` will pick on the default device."""

    def __init__(self) -> None:
        self.start = Counter(_RAN)

    def __str__(self) -> str:
        ran = (_RAN - self.start).most_common()
        if ran:
            return ", ".join(name for name, _ in ran)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return f"none run yet (auto on {device}: {auto_backend(device)})"


def _run_kernel(name: str, x: _ScanArgs, chunk_size: int | None, forced: bool):
    """(out, last) from the mamba_ssm or triton kernel, or None when it is unavailable (raises when ``forced``)."""
    if name == "mamba_ssm":
        kernel = _cuda_scan() if x.u.is_cuda else None
        if kernel is not None:
            return kernel(*x, True)
        if forced:
            raise RuntimeError("the mamba-ssm CUDA kernel needs CUDA tensors and an importable mamba_ssm")
        return None
    module = _triton_scan()
    if module is None:
        if forced:
            raise RuntimeError("the Triton scan needs an importable triton (and CUDA tensors, or TRITON_INTERPRET=1)")
        return None
    try:
        return module.triton_selective_scan(**x._asdict(), chunk_size=chunk_size)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:  # a compile error on this GPU / triton version
        if forced:
            raise
        _triton_failed(exc)
        return None


def selective_scan(
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
    return_last_state: bool = False,
    backend: str = "auto",
    chunk_size: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective scan: mamba-ssm's ``selective_scan_fn`` (docs/model-maths.md#kernel-signature), its options after C
    keyword-only.

    Args:
        u, delta, z: ``[B, D, L]``.
        A: ``[D, N]`` (negative real).
        B, C: ``[B, N, L]`` or grouped ``[B, G, N, L]``; channel d uses group ``d // (D / G)``.
        D, delta_bias: ``[D]``.
        backend: ``"auto"`` (:func:`auto_backend`: ``ZSL_BENCH_SCAN`` if set; for CUDA tensors mamba_ssm → triton
            → torch; for CPU tensors fused → torch), ``"torch"`` (chunked),
            ``"fused"`` (the compiled CPU scan, falling back to ``"torch"``), ``"ref"`` (sequential loop),
            ``"triton"`` or ``"mamba_ssm"`` (alias ``"cuda"``): kernels, an error if they cannot run.
        chunk_size: steps per chunk of the torch scan (default:
            :func:`~zsl_bench.layers.chunked_scan.chunk_plan`) and between the states the Triton and fused
            forwards save (default 128, and :func:`~zsl_bench.layers.fused_scan.fused_plan`); mamba_ssm ignores it.

    Returns:
        out ``[B, D, L]`` in u's dtype, and the last state ``[B, D, N]`` if ``return_last_state`` (float32, or
        float64 for float64 inputs on the torch and ref backends).

    Raises:
        ValueError: an unknown backend (or ``ZSL_BENCH_SCAN``), or shapes that break the conventions above.
        RuntimeError: a forced triton / mamba_ssm that cannot run here.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    forced = backend != "auto" or _forced() is not None
    name = auto_backend(u.device, u.dtype) if backend == "auto" and (u.is_cuda or _forced()) else backend
    name = "mamba_ssm" if name == "cuda" else name
    x = _ScanArgs(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if name in ("mamba_ssm", "triton"):
        result = _run_kernel(name, x, chunk_size, forced)
        if result is not None:
            _RAN[name] += 1
            return result if return_last_state else result[0]
        name = "torch"
    _check_shapes(u, delta, A, B, C)
    fused = (name == "fused" or (name == "auto" and _fused_by_default())) and u.device.type == "cpu"
    out, last = _scan_ref(x) if name == "ref" else _scan_torch(x, chunk_size, fused)
    _RAN["ref" if name == "ref" else ("fused" if fused and _fused_available() else "torch")] += 1
    return (out, last) if return_last_state else out


selective_scan_ref = functools.partial(selective_scan, backend="ref")
selective_scan_ref.__doc__ = """:func:`selective_scan` with ``backend="ref"``: the sequential loop, float64-capable;
tests use it as ground truth."""
selective_scan_chunked = functools.partial(selective_scan, backend="torch")
selective_scan_chunked.__doc__ = """:func:`selective_scan` with ``backend="torch"``: the chunked scan on any device
(``chunk_size`` overrides T, the steps per chunk)."""


@functools.cache
def _cuda_conv1d() -> Callable | None:
    """causal-conv1d's ``causal_conv1d_fn``, or None when it does not import (logged once)."""
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception as exc:  # same guard as the scan kernel
        log.warning("causal_conv1d unavailable (%s: %s); using F.conv1d", type(exc).__name__, exc)
        return None
    return causal_conv1d_fn


def causal_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """SiLU of a causal depthwise convolution (Mamba's conv1d): x [B, D, L] → [B, D, L].

    ``weight`` is ``[D, 1, K]`` (``nn.Conv1d`` layout) or ``[D, K]``; the left padding is K − 1. CUDA tensors use
    causal-conv1d's kernel when it imports; everything else ``F.conv1d``.
    """
    w = weight.reshape(weight.shape[0], -1)
    if x.is_cuda:
        kernel = _cuda_conv1d()
        if kernel is not None:
            return kernel(x, w, bias, activation="silu")
    out = F.conv1d(x, w.unsqueeze(1), bias, padding=w.shape[1] - 1, groups=w.shape[0])
    return F.silu(out[..., : x.shape[-1]])
