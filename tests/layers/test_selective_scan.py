"""The selective scan: golden vectors, chunked vs the float64 loop (outputs and every gradient), stability,
dispatch and the import guard of the optional CUDA kernel."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zsl_bench.layers import chunked_forward, chunked_layout
from zsl_bench.layers.chunked_scan import ChunkedScanFn, chunk_plan
from zsl_bench.layers.selective_scan import (
    causal_conv1d_silu,
    selective_scan,
    selective_scan_chunked,
    selective_scan_ref,
)

ss_module = importlib.import_module("zsl_bench.layers.selective_scan")


def make_inputs(
    batch: int,
    dm: int,
    length: int,
    n: int,
    groups: int | None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    delta_shift: float = -1.0,
    a_scale: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Random scan inputs; ``groups=None`` gives 3-D B/C [B, N, L]."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    bc_shape = (batch, n, length) if groups is None else (batch, groups, n, length)
    inputs = {
        "u": rnd(batch, dm, length),
        "delta": rnd(batch, dm, length) + delta_shift,
        "A": -torch.exp(rnd(dm, n) * 0.5) * a_scale,
        "B": rnd(*bc_shape),
        "C": rnd(*bc_shape),
        "D": rnd(dm),
        "z": rnd(batch, dm, length),
        "delta_bias": rnd(dm) * 0.5,
    }
    return {k: v.to(dtype) for k, v in inputs.items()}


def run_with_grads(fn, inputs: dict[str, torch.Tensor], **kwargs):
    """out, last_state and the gradient of a fixed random functional w.r.t. every input."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}
    out, last = fn(**leaves, delta_softplus=True, return_last_state=True, **kwargs)
    g = torch.Generator().manual_seed(123)
    w_out = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.dtype)
    w_last = torch.randn(last.shape, generator=g, dtype=torch.float64).to(last.dtype)
    loss = (out * w_out).sum() + (last * w_last).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return out.detach(), last.detach(), dict(zip(leaves, grads, strict=True))


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual − expected| / max |expected| (computed in float64)."""
    expected = expected.double()
    return ((actual.double() - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


# ------------------------------------------------------------------------------------------------------------
# Golden vectors from the official code
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scan_case(ref_file) -> dict:
    return torch.load(ref_file("vmamba/scan_case.pt"), weights_only=True)


@pytest.mark.parametrize("variant", ["plain", "g2", "z"])
@pytest.mark.parametrize("impl", ["chunked", "ref"])
def test_golden_scan_case(scan_case: dict, variant: str, impl: str) -> None:
    x = scan_case["inputs"]
    B, C = (x["B_g2"], x["C_g2"]) if variant == "g2" else (x["B"], x["C"])
    z = x["z"] if variant == "z" else None
    key = {"plain": "out", "g2": "out_g2", "z": "out_z"}[variant]
    fn = selective_scan_chunked if impl == "chunked" else selective_scan_ref
    common = {"D": x["D"], "z": z, "delta_bias": x["delta_bias"], "delta_softplus": True, "return_last_state": True}

    out, last = fn(x["u"], x["delta"], x["A"], B, C, **common)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, scan_case[f"{key}_fp32"], rtol=1e-5, atol=1e-5)
    if variant != "g2":
        torch.testing.assert_close(last.float(), scan_case["last_state_fp32"], rtol=1e-5, atol=1e-5)

    as64 = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in common.items()}
    out64, last64 = fn(x["u"].double(), x["delta"].double(), x["A"].double(), B.double(), C.double(), **as64)
    torch.testing.assert_close(out64, scan_case[f"{key}_fp64"], rtol=1e-10, atol=1e-12)
    if variant != "g2":
        torch.testing.assert_close(last64, scan_case["last_state_fp64"], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------------------
# Chunked float32 vs the float64 sequential reference: outputs and the gradient of every input
# ------------------------------------------------------------------------------------------------------------
CASES = [
    # batch, D, L, N, G (None = 3-D B/C), chunk_size
    (2, 8, 37, 4, None, None),
    (2, 8, 37, 4, 2, 5),
    (2, 12, 100, 1, 4, None),  # VMamba-like: N = 1, four groups
    (1, 6, 64, 16, 1, 8),  # L a multiple of T
    (2, 4, 300, 3, None, 1),  # T = 1: one step per chunk, the doubling carry scan does everything
    (1, 4, 50, 2, None, 400),  # one chunk longer than L
    (2, 32, 100, 16, None, None),  # wide steps: the default plan is a single chunk
]


@pytest.mark.parametrize(("batch", "dm", "length", "n", "groups", "chunk"), CASES)
def test_chunked_fp32_matches_float64_reference(batch, dm, length, n, groups, chunk) -> None:
    inputs = make_inputs(batch, dm, length, n, groups)
    out64, last64, grads64 = run_with_grads(selective_scan_ref, inputs)
    out32, last32, grads32 = run_with_grads(
        selective_scan_chunked, {k: v.float() for k, v in inputs.items()}, chunk_size=chunk
    )
    assert out32.dtype == torch.float32
    assert rel_err(out32, out64) <= 1e-5
    assert rel_err(last32, last64) <= 1e-5
    for name, g64 in grads64.items():
        assert grads32[name].shape == inputs[name].shape, name
        assert rel_err(grads32[name], g64) <= 1e-5, name


@pytest.mark.parametrize(("chunk", "length"), [(1, 19), (4, 19), (7, 21), (None, 40)])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("extras", [False, True])
def test_core_gradcheck(chunk, length, n, extras) -> None:
    """The hand-written backward against finite differences (float64), with and without D / z / δ_bias."""
    g = torch.Generator().manual_seed(length + n)
    b, dm, groups = 2, 4, 2

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    a_neg = (-torch.rand(dm, n, generator=g, dtype=torch.float64) - 0.1).requires_grad_()
    args = [rnd(b, dm, length), rnd(b, dm, length), a_neg, rnd(b, groups, n, length), rnd(b, groups, n, length)]
    args += [rnd(dm), rnd(b, dm, length), rnd(dm)] if extras else [None, None, None]
    assert torch.autograd.gradcheck(lambda *x: ChunkedScanFn.apply(*x, extras, chunk), args)


def test_chunked_float64_is_exact() -> None:
    inputs = make_inputs(2, 6, 83, 5, 3)
    out_r, last_r, grads_r = run_with_grads(selective_scan_ref, inputs)
    out_c, last_c, grads_c = run_with_grads(selective_scan_chunked, inputs, chunk_size=9)
    assert rel_err(out_c, out_r) <= 1e-12
    assert rel_err(last_c, last_r) <= 1e-12
    for name in grads_r:
        assert rel_err(grads_c[name], grads_r[name]) <= 1e-11, name


@pytest.mark.parametrize("block_elems", [1, 150, 10**9])  # blocks of 1, 4 and all 53 steps
@pytest.mark.parametrize("chunk", [None, 5, 53])  # 8, 11 and 1 chunks for the backward
def test_sequential_forward_blocks_and_carries(monkeypatch, block_elems: int, chunk: int | None) -> None:
    """The cache-blocked sequential forward, forced at a narrow width, in blocks of any length: exact outputs, and
    the states it hands the backward for every chunking give exact gradients."""
    monkeypatch.setattr(chunked_layout, "_SEQUENTIAL_MIN_STEP", 1)
    monkeypatch.setattr(chunked_layout, "_SEQUENTIAL_MIN_STATES", 1)
    monkeypatch.setattr(chunked_forward, "_BLOCK_ELEMS", block_elems)
    inputs = make_inputs(2, 6, 53, 3, 2)  # one step: 2·6·3 = 36 elements
    out_r, last_r, grads_r = run_with_grads(selective_scan_ref, inputs)
    out_c, last_c, grads_c = run_with_grads(selective_scan_chunked, inputs, chunk_size=chunk)
    assert rel_err(out_c, out_r) <= 1e-12
    assert rel_err(last_c, last_r) <= 1e-12
    for name in grads_r:
        assert rel_err(grads_c[name], grads_r[name]) <= 1e-11, name
    with torch.no_grad():  # inference skips recording the carries; same results
        out_n, last_n = selective_scan_chunked(**inputs, delta_softplus=True, return_last_state=True, chunk_size=chunk)
    assert rel_err(out_n, out_r) <= 1e-12
    assert rel_err(last_n, last_r) <= 1e-12


def test_carries_are_recorded_only_when_a_backward_can_follow(monkeypatch) -> None:
    """A model's parameters (here D) require grad even under no_grad; only the caller knows no backward will run."""
    seen = []
    real = chunked_forward._sequential_forward
    monkeypatch.setattr(
        chunked_forward, "_sequential_forward", lambda *a, **kw: seen.append(kw["keep_carries"]) or real(*a, **kw)
    )
    x = {k: v.float() for k, v in make_inputs(2, 64, 20, 16, None).items()}  # steps of 2048: the sequential forward
    x["D"] = torch.nn.Parameter(x["D"])
    with torch.no_grad():
        selective_scan_chunked(**x, delta_softplus=True)
    out = selective_scan_chunked(**x, delta_softplus=True)
    out.sum().backward()
    assert seen == [False, True] and x["D"].grad is not None


@pytest.mark.parametrize("a_scale", [1e-4, 30.0, 1e3])
def test_extreme_decays_are_stable(a_scale: float) -> None:
    """|A·Δ| from ~1e-5 (no decay for thousands of steps) to ~1e4 per step (instant forgetting, exp underflows)."""
    inputs = make_inputs(1, 6, 513, 4, None, seed=3, delta_shift=1.0, a_scale=a_scale)
    out64, last64, grads64 = run_with_grads(selective_scan_ref, inputs)
    out32, last32, grads32 = run_with_grads(selective_scan_chunked, {k: v.float() for k, v in inputs.items()})
    assert torch.isfinite(out32).all() and torch.isfinite(last32).all()
    assert rel_err(out32, out64) <= 1e-5
    assert rel_err(last32, last64) <= 1e-5
    for name, g64 in grads64.items():
        assert torch.isfinite(grads32[name]).all(), name
        assert rel_err(grads32[name], g64) <= 1e-5, name


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 2),
    groups=st.sampled_from([None, 1, 2]),
    dg=st.integers(1, 3),
    length=st.integers(1, 70),
    n=st.integers(1, 4),
    chunk=st.one_of(st.none(), st.integers(1, 80)),
    seed=st.integers(0, 2**16),
)
def test_chunked_equals_reference_property(batch, groups, dg, length, n, chunk, seed) -> None:
    dm = dg * (groups or 1)
    inputs = make_inputs(batch, dm, length, n, groups, seed=seed)
    out_r, last_r = selective_scan_ref(**inputs, delta_softplus=True, return_last_state=True)
    out_c, last_c = selective_scan_chunked(**inputs, delta_softplus=True, return_last_state=True, chunk_size=chunk)
    torch.testing.assert_close(out_c, out_r, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(last_c, last_r, rtol=1e-10, atol=1e-10)


def test_optional_arguments_and_no_softplus() -> None:
    x = make_inputs(2, 4, 30, 2, None)
    for kwargs in ({}, {"D": x["D"]}, {"z": x["z"]}, {"delta_bias": x["delta_bias"]}):
        expected = selective_scan_ref(x["u"], x["delta"].abs(), x["A"], x["B"], x["C"], **kwargs)
        actual = selective_scan(x["u"], x["delta"].abs(), x["A"], x["B"], x["C"], **kwargs)
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_compute_in_fp32(dtype: torch.dtype) -> None:
    x = {k: v.to(dtype) for k, v in make_inputs(2, 4, 40, 3, 2).items()}
    out = selective_scan(**x, delta_softplus=True)
    assert out.dtype == dtype
    expected = selective_scan_ref(**{k: v.double() for k, v in x.items()}, delta_softplus=True)
    assert rel_err(out.float(), expected) <= 1e-2


def test_shape_errors_are_clear() -> None:
    x = make_inputs(2, 6, 10, 3, None)
    with pytest.raises(ValueError, match="A must be"):
        selective_scan(x["u"], x["delta"], x["A"][:4], x["B"], x["C"])
    with pytest.raises(ValueError, match="B must be"):
        selective_scan(x["u"], x["delta"], x["A"], x["B"].view(2, 1, 3, 10).expand(2, 4, 3, 10), x["C"])
    with pytest.raises(ValueError, match="backend"):
        selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], backend="tpu")


def test_chunk_plan() -> None:
    for length in (1, 2, 7, 197, 1024, 3136, 4097):
        t, nc = chunk_plan(length)
        assert t * nc >= length > (nc - 1) * t
        assert t * (nc - 1) < length
    assert chunk_plan(197, None, 2 * 384 * 16) == (197, 1)  # short and wide: one chunk
    assert chunk_plan(3136, None, 2 * 192) == (56, 56)
    assert chunk_plan(100, 1) == (1, 100)
    assert chunk_plan(10, 400) == (10, 1)
    with pytest.raises(ValueError):
        chunk_plan(0)


# ------------------------------------------------------------------------------------------------------------
# Dispatch and the optional kernel
# ------------------------------------------------------------------------------------------------------------
def test_backends_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    x = make_inputs(1, 4, 20, 2, None, dtype=torch.float32)
    expected = selective_scan_ref(**x)
    torch.testing.assert_close(selective_scan(**x, backend="ref"), expected)
    monkeypatch.setattr(ss_module, "_cuda_scan", lambda: pytest.fail("the kernel was looked up for CPU tensors"))
    torch.testing.assert_close(selective_scan(**x), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(selective_scan(**x, backend="torch"), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="CUDA"):
        selective_scan(**x, backend="cuda")


@pytest.mark.parametrize(("dm", "length", "n", "groups"), [(16, 256, 1, 4), (24, 70, 4, 3), (8, 33, 16, None)])
def test_an_evaluation_scan_runs_the_cpu_default_with_the_training_numbers(monkeypatch, dm, length, n, groups) -> None:
    """A no-grad call with parameters that require grad (a model under evaluation) runs what "auto" trains with on
    CPU (the fused scan where it builds, else the torch scan; no carries kept for a backward) and returns the
    autograd forward's numbers exactly, and the float64 reference's to float32 rounding."""
    monkeypatch.delenv(ss_module.SCAN_ENV, raising=False)
    monkeypatch.delenv(ss_module.FUSED_ENV, raising=False)
    x64 = make_inputs(3, dm, length, n, groups)
    x = {k: v.float() for k, v in x64.items()}
    x["A"], x["D"] = torch.nn.Parameter(x["A"]), torch.nn.Parameter(x["D"])
    before = ss_module.scan_backends_run()
    with torch.no_grad():
        fast, last = selective_scan(**x, delta_softplus=True, return_last_state=True)
    ran = {k: v - before.get(k, 0) for k, v in ss_module.scan_backends_run().items() if v != before.get(k, 0)}
    assert ran == {ss_module.auto_backend("cpu"): 1} and not fast.requires_grad
    trained, trained_last = selective_scan(**x, delta_softplus=True, return_last_state=True)
    assert trained.requires_grad
    torch.testing.assert_close(fast, trained.detach(), rtol=0, atol=0)
    torch.testing.assert_close(last, trained_last.detach(), rtol=0, atol=0)
    expected, expected_last = selective_scan_ref(**x64, delta_softplus=True, return_last_state=True)
    assert rel_err(fast, expected) <= 1e-5 and rel_err(last, expected_last) <= 1e-5


class _BrokenModule(types.ModuleType):
    def __getattr__(self, name: str):
        raise RuntimeError("selective_scan_cuda.so: undefined symbol: _ZN3c10")


@pytest.mark.parametrize(
    ("loader", "modules"),
    [
        ("_cuda_scan", ("mamba_ssm", "mamba_ssm.ops", "mamba_ssm.ops.selective_scan_interface")),
        ("_cuda_conv1d", ("causal_conv1d",)),
    ],
)
def test_broken_kernel_import_falls_back_and_logs_once(monkeypatch, caplog, loader, modules) -> None:
    """An installed-but-broken package (raising RuntimeError, not ImportError) counts as absent."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, _BrokenModule(name))
    load = getattr(ss_module, loader)
    load.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger=ss_module.__name__):
            assert load() is None
            assert load() is None
        assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1
    finally:
        load.cache_clear()


def test_causal_conv1d_silu_is_causal_and_depthwise() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, generator=g, dtype=torch.float64)
    w = torch.randn(3, 1, 4, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    expected = torch.empty_like(x)
    for t in range(9):  # out_t = Σ_k w[k] x_{t-(K-1)+k} + b, zeros before the start
        acc = b.unsqueeze(0).expand(2, 3).clone()
        for k in range(4):
            s = t - 3 + k
            if s >= 0:
                acc += w[:, 0, k] * x[:, :, s]
        expected[:, :, t] = torch.nn.functional.silu(acc)
    torch.testing.assert_close(causal_conv1d_silu(x, w, b), expected)
    torch.testing.assert_close(causal_conv1d_silu(x, w[:, 0], b), expected)


def test_importing_never_touches_the_cuda_packages() -> None:
    code = (
        "import sys, zsl_bench.layers, zsl_bench.models.vmamba, zsl_bench.models.vim\n"
        "bad = [m for m in ('mamba_ssm', 'causal_conv1d', 'triton', 'selective_scan_cuda') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_kernel_matches_torch_path() -> None:
    if not ss_module.cuda_kernel_available():
        pytest.skip("mamba_ssm's CUDA kernel is not importable")
    for groups in (None, 4):
        inputs = {k: v.float().cuda() for k, v in make_inputs(2, 64, 300, 4, groups).items()}
        out_k, last_k, grads_k = run_with_grads(lambda **kw: selective_scan(**kw, backend="cuda"), inputs)
        out_t, last_t, grads_t = run_with_grads(lambda **kw: selective_scan(**kw, backend="torch"), inputs)
        assert rel_err(out_k, out_t) <= 1e-4
        assert rel_err(last_k, last_t) <= 1e-4
        for name in grads_t:
            assert rel_err(grads_k[name], grads_t[name]) <= 1e-3, name
