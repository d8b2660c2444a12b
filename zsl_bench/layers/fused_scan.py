"""The fused CPU selective scan — forward and backward compiled on first use — the CPU default where it builds.

``csrc/selective_scan_cpu.cpp`` walks each (batch, channel) row in chunks of T steps whose decays and states stay
in L1: the forward records the state entering every chunk, and the backward recomputes each chunk's states from
it and runs the adjoint backwards in time, accumulating every gradient in cache (see the comment at the top of
the source). Rows are spread over the intra-op threads. :class:`FusedScanFn` wraps both as one autograd function
with the arguments of :class:`~zsl_bench.layers.chunked_scan.ChunkedScanFn`.

Building needs a C++ compiler and ninja (a dependency of the ``deepspeed`` extra); it takes about 30 s once per
machine and is cached under ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``). The build targets
the machine's own CPU (``-march=native``, ``-ffast-math`` for vectorised exp/log1p; ``-fopenmp`` for the threads),
so the extension's name carries a digest of the CPU's model and flags, of the build flags and of the source:
nodes of different CPUs sharing a home directory, or checkouts of different versions, build their own copies.
Processes that start at once build it once: they queue on an OS file lock (released if its holder dies, unlike
torch's own lock file, which a killed builder leaves behind and on which torch would then wait forever — a stale
one is removed under the OS lock). If the build or the import fails, :func:`extension` logs why once and returns
None, and callers use the torch scan.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["FusedScanFn", "extension", "extension_tried", "fused_plan"]

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "selective_scan_cpu.cpp"
# -fopenmp: ATen's parallel_for is inlined into the extension, and torch's CPU build parallelises with OpenMP.
CFLAGS = ["-O3", "-ffast-math", "-march=native", "-fopenmp"]
LDFLAGS = ["-fopenmp"]  # never -ffast-math here: linking with it would flush denormals for the whole process
CHUNK_ELEMS = 512  # default steps per chunk: max(64, 512 / N), so T·N decays and states per row stay in L1 …
MIN_CHUNK = 64  # … and the carries cost at most L/64 states per row


def _cpu_digest() -> str:
    """A short digest of this CPU's model name and feature flags (Linux), else of the platform's machine name,
    and of the build flags and the source."""
    info = platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    keys = ("model name", "flags", "Features", "CPU part")
    info += "".join(sorted({line for line in lines if line.split(":")[0].strip() in keys})) + " ".join(CFLAGS)
    with contextlib.suppress(OSError):
        info += hashlib.sha1(SOURCE.read_bytes()).hexdigest()
    return hashlib.sha1(info.encode()).hexdigest()[:10]


def _build_dir(name: str) -> Path:
    """Where torch would build ``name``: ``$TORCH_EXTENSIONS_DIR`` (or ~/.cache/torch_extensions)/py3X_cpu/name."""
    from torch.utils.cpp_extension import get_default_build_root

    tag = f"py{sys.version_info.major}{sys.version_info.minor}_cpu"
    return Path(get_default_build_root()) / tag / name


@contextlib.contextmanager
def _build_lock(build_dir: Path) -> Iterator[None]:
    """Hold an OS lock on ``build_dir``/../``name``.flock (POSIX; a no-op elsewhere) and clear a stale torch lock."""
    try:
        import fcntl
    except ImportError:  # Windows: torch's own lock file only
        yield
        return
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f"{build_dir.name}.flock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the OS if this process dies
        try:
            stale = build_dir / "lock"  # every builder holds our lock first: a torch lock seen here is left over
            if stale.exists():
                log.warning("removing the stale build lock %s", stale)
                stale.unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.cache
def extension() -> ModuleType | None:
    """The compiled module (``scan_forward``, ``scan_backward``), or None when it cannot be built or imported here
    (logged once per process)."""
    try:
        from torch.utils.cpp_extension import load

        name = f"zsl_bench_scan_cpu_{_cpu_digest()}"
        build_dir = _build_dir(name)
        with _build_lock(build_dir):
            return load(
                name=name,
                sources=[str(SOURCE)],
                extra_cflags=CFLAGS,
                extra_ldflags=LDFLAGS,
                build_directory=str(build_dir),
                verbose=False,
            )
    except Exception as exc:  # no compiler, no ninja, a read-only cache, an ABI mismatch …
        log.warning("fused CPU scan unavailable (%s: %s); using the torch scan", type(exc).__name__, exc)
        return None


def extension_tried() -> bool:
    """Whether :func:`extension` has already been called in this process (so calling it builds nothing)."""
    return extension.cache_info().currsize > 0


def fused_plan(length: int, n: int, chunk_size: int | None = None) -> tuple[int, int]:
    """(T, nc): steps per chunk (``chunk_size``, else max(64, 512 / N); at most L) and chunks, none empty."""
    t = max(1, min(int(chunk_size or max(MIN_CHUNK, CHUNK_ELEMS // max(n, 1))), length))
    return t, -(-length // t)


def _time_major(bc: torch.Tensor) -> torch.Tensor:
    """Grouped B or C [B, G, N, L] → contiguous [B, G, L, N], so one step's N values are adjacent."""
    return bc.transpose(-1, -2).contiguous()


class FusedScanFn(torch.autograd.Function):
    """``apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size[, keep_carries])`` → (out [B, Dm, L],
    h_{L-1} [B, Dm, N]), both passes compiled: the arguments and semantics of
    :class:`~zsl_bench.layers.chunked_scan.ChunkedScanFn` (u, delta, z [B, Dm, L]; A [Dm, N]; grouped B, C
    [B, G, N, L]; D, delta_bias [Dm]; one float dtype; CPU tensors). ``keep_carries`` False (the caller runs
    without grad) skips recording the chunk carries, [B, Dm, nc, N], that the backward restarts from. Use it only
    when :func:`extension` is not None."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size, keep_carries=True):
        ext = extension()
        assert ext is not None, "extension() first"
        t, nc = fused_plan(u.shape[-1], A.shape[-1], chunk_size)
        opt = [None if x is None else x.contiguous() for x in (D, z, delta_bias)]
        args = (u.contiguous(), delta.contiguous(), A.contiguous(), _time_major(B), _time_major(C), *opt)
        keep = keep_carries and any(ctx.needs_input_grad[:8])
        out, last, carries = ext.scan_forward(*args, bool(delta_softplus), t, nc, keep)
        ctx.plan = (bool(delta_softplus), t, nc)
        ctx.save_for_backward(*args, carries)
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out, g_last):
        *args, carries = ctx.saved_tensors
        u = args[0]
        softplus, t, nc = ctx.plan
        g_out = torch.zeros_like(u) if g_out is None else g_out.to(u.dtype).contiguous()
        g_last = None if g_last is None else g_last.to(u.dtype).contiguous()
        ext = extension()
        du, dd, dz, dA, dD, dbias, dB, dC = ext.scan_backward(*args, softplus, t, nc, carries, g_out, g_last)
        g_B, g_C = (x.sum(0).transpose(-1, -2) for x in (dB, dC))  # over the tasks → [B, G, N, L]
        _, _, _, _, _, D, z, bias = args
        return (
            du,
            dd,
            dA.sum(0),
            g_B,
            g_C,
            None if D is None else dD.sum(0),
            None if z is None else dz,
            None if bias is None else dbias.sum(0),
            None,
            None,
            None,
        )
