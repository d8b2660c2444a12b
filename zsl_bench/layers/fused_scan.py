"""An opt-in fused CPU forward for the selective scan, compiled on first use.

The torch scan (:mod:`zsl_bench.layers.chunked_scan`) is the CPU default. With N ≥ 4 states its forward is bound by
the passes it makes over cache-sized blocks of ``[B, L, D, N]`` on one core; this C++ loop
(``csrc/selective_scan_cpu.cpp``) makes one pass per (batch, channel) row and spreads the rows over the intra-op
threads. It replaces only the forward: the backward stays the torch one, restarted from the chunk carries the
kernel records. Select it with ``selective_scan(..., backend="fused")`` or, for every scan of a process (and of
the trials it starts), ``ZSL_BENCH_FUSED_SCAN=1``.

Building needs a C++ compiler and ninja (a dependency of the ``deepspeed`` extra); it takes about 20 s once and is
cached by torch under ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``). The build targets the
machine's own CPU (``-march=native``, ``-ffast-math`` for a vectorised exp; ``-fopenmp`` for the threads), so the
extension's name carries a digest of the CPU's model and flags and of the build flags: nodes of different CPUs
sharing a home directory build their own copies. If the build or the import fails, :func:`extension` logs why once
and returns None, and callers use the torch path.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import platform
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["extension", "fused_forward"]

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "selective_scan_cpu.cpp"
# -fopenmp: ATen's parallel_for is inlined into the extension, and torch's CPU build parallelises with OpenMP.
CFLAGS = ["-O3", "-ffast-math", "-march=native", "-fopenmp"]
LDFLAGS = ["-fopenmp"]


def _cpu_digest() -> str:
    """A short digest of this CPU's model name and feature flags (Linux), else of the platform's machine name."""
    info = platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    keys = ("model name", "flags", "Features", "CPU part")
    info += "".join(sorted({line for line in lines if line.split(":")[0].strip() in keys})) + " ".join(CFLAGS)
    return hashlib.sha1(info.encode()).hexdigest()[:10]


@functools.cache
def extension() -> ModuleType | None:
    """The compiled module (``scan_forward``), or None when it cannot be built or imported here (logged once)."""
    try:
        from torch.utils.cpp_extension import load

        return load(
            name=f"zsl_bench_scan_cpu_{_cpu_digest()}",
            sources=[str(SOURCE)],
            extra_cflags=CFLAGS,
            extra_ldflags=LDFLAGS,
            verbose=False,
        )
    except Exception as exc:  # no compiler, no ninja, a read-only cache, an ABI mismatch …
        log.warning("fused CPU scan unavailable (%s: %s); using the torch scan", type(exc).__name__, exc)
        return None


def fused_forward(
    dt: torch.Tensor,
    u: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk: int,
    chunks: int,
    keep_carries: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """y = Σ_n C·h [B, Dm, L], the last state [B, Dm, N] and the states carried into the ``chunks`` chunks of
    ``chunk`` steps, [B, nc, G, Dg, N] (None unless ``keep_carries``).

    Args: Δ (after softplus) and u [B, Dm, L], A [Dm, N], grouped B and C [B, G, N, L], all one float dtype on
    the CPU. Call only when :func:`extension` is not None.
    """
    ext = extension()
    assert ext is not None, "extension() first"
    bt, ct = (t.transpose(-1, -2).contiguous() for t in (B, C))  # [B, G, L, N]: one row's steps are contiguous
    y, last, carries = ext.scan_forward(
        dt.contiguous(), u.contiguous(), A.contiguous(), bt, ct, chunk, chunks, keep_carries
    )
    return y, last, carries if keep_carries else None
