"""The fused CPU scan (forward and backward compiled on first use, the CPU default): the same outputs, last
states and gradients as the float64 reference; how it is selected; the build lock; and the fallback when it
cannot be built."""

from __future__ import annotations

import importlib
import logging
import os

import pytest
import torch

from zsl_bench.layers import fused_scan
from zsl_bench.layers.selective_scan import FUSED_ENV, selective_scan, selective_scan_ref

from .test_selective_scan import make_inputs, rel_err, run_with_grads


@pytest.fixture(scope="module")
def built():
    """The compiled extension (about 20 s the first time on a machine); skipped without a compiler, except on CI."""
    if fused_scan.extension() is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("the fused CPU scan did not build on CI (see the logged reason)")
        pytest.skip("the fused CPU scan cannot be built here (no C++ compiler or ninja)")
    return fused_scan.extension()


def fused(**kwargs):
    return selective_scan(**kwargs, backend="fused")


def _subset(inputs: dict, drop: tuple[str, ...]) -> dict:
    return {k: v for k, v in inputs.items() if k not in drop}


def _run(fn, inputs: dict, softplus: bool, **kwargs):
    """out, last state and the gradient of a fixed random functional w.r.t. every given input."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}
    out, last = fn(**leaves, delta_softplus=softplus, return_last_state=True, **kwargs)
    g = torch.Generator().manual_seed(7)
    w_out = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.dtype)
    w_last = torch.randn(last.shape, generator=g, dtype=torch.float64).to(last.dtype)
    grads = torch.autograd.grad((out * w_out).sum() + (last * w_last).sum(), list(leaves.values()))
    return out.detach(), last.detach(), dict(zip(leaves, grads, strict=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("batch", "dm", "length", "n", "groups", "chunk"),
    [
        (2, 8, 37, 4, None, None),  # plain B/C [B, N, L], odd L
        (2, 9, 37, 4, 3, 5),  # grouped, odd D, 8 chunks
        (2, 12, 101, 1, 4, None),  # VMamba-like: N = 1, four groups
        (1, 7, 67, 1, None, 16),  # N = 1 plain, odd D and L
        (1, 6, 64, 16, 1, 8),  # Vim-like N = 16, L a multiple of T
        (2, 5, 53, 16, None, None),  # N = 16 plain, odd D and L
        (2, 4, 30, 3, None, 1),  # T = 1: a carry before every step
    ],
)
@pytest.mark.parametrize(
    ("drop", "softplus"),
    [((), True), (("z", "D", "delta_bias"), True), (("z",), False), (("D", "delta_bias"), False)],
)
def test_fused_matches_float64_reference_with_gradients(
    built, dtype, batch, dm, length, n, groups, chunk, drop, softplus
) -> None:
    """Output, last state and every gradient (u, δ, A, B, C, D, z, δ_bias) against the float64 loop."""
    inputs = _subset(make_inputs(batch, dm, length, n, groups, seed=length + n), drop)
    if not softplus:  # Δ = δ + δ_bias itself: keep it positive (decays ≤ 1)
        inputs["delta"] = torch.nn.functional.softplus(inputs["delta"]) + 0.1
    out64, last64, grads64 = _run(selective_scan_ref, inputs, softplus)
    cast = {k: v.to(dtype) for k, v in inputs.items()}
    out, last, grads = _run(fused, cast, softplus, chunk_size=chunk)
    tol = 1e-5 if dtype == torch.float32 else 1e-11
    assert out.dtype == dtype and last.dtype == dtype
    assert rel_err(out, out64) <= tol and rel_err(last, last64) <= tol
    assert set(grads) == set(grads64)
    for name, g64 in grads64.items():
        assert rel_err(grads[name], g64) <= tol, name


def test_fused_matches_the_torch_scan_and_inference_skips_the_carries(built) -> None:
    inputs = {k: v.float() for k, v in make_inputs(2, 6, 83, 5, 3).items()}
    out_t, last_t, grads_t = run_with_grads(selective_scan, inputs, backend="torch")
    out_f, last_f, grads_f = run_with_grads(fused, inputs, chunk_size=9)
    torch.testing.assert_close(out_f, out_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last_f, last_t, rtol=1e-5, atol=1e-5)
    for name in grads_t:
        torch.testing.assert_close(grads_f[name], grads_t[name], rtol=1e-4, atol=1e-4)
    args = (inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"])
    with torch.no_grad():
        out_n = selective_scan(*args, delta_softplus=True, backend="fused")
    torch.testing.assert_close(out_n, selective_scan(*args, delta_softplus=True, backend="torch"))
    ext = built
    bt = inputs["B"].transpose(-1, -2).contiguous()
    _, _, carries = ext.scan_forward(*args[:3], bt, bt, None, None, None, True, 9, 10, False)
    assert carries.numel() == 0


def test_auto_uses_the_fused_scan_on_cpu_by_default(built, monkeypatch) -> None:
    ss = importlib.import_module("zsl_bench.layers.selective_scan")

    calls = []
    real = fused_scan.FusedScanFn.apply
    monkeypatch.setattr(fused_scan.FusedScanFn, "apply", lambda *a: calls.append(1) or real(*a))
    monkeypatch.delenv(ss.SCAN_ENV, raising=False)
    inputs = {k: v.float() for k, v in make_inputs(1, 4, 20, 4, None).items()}
    monkeypatch.delenv(FUSED_ENV, raising=False)
    before = ss.scan_backends_run().get("fused", 0)
    chosen = selective_scan(**inputs, delta_softplus=True)
    assert calls == [1] and ss.auto_backend("cpu") == "fused"
    assert ss.scan_backends_run()["fused"] == before + 1
    monkeypatch.setenv(FUSED_ENV, "0")  # the opt-out
    plain = selective_scan(**inputs, delta_softplus=True)
    assert calls == [1] and ss.auto_backend("cpu") == "torch"
    torch.testing.assert_close(chosen, plain, rtol=1e-5, atol=1e-6)
    monkeypatch.setenv(ss.SCAN_ENV, "fused")  # forcing wins over the opt-out
    selective_scan(**inputs, delta_softplus=True)
    assert calls == [1, 1]
    monkeypatch.setenv(ss.SCAN_ENV, "torch")
    selective_scan(**inputs, delta_softplus=True)
    assert calls == [1, 1]


def test_a_failed_build_falls_back_to_the_torch_scan_and_logs_once(monkeypatch, caplog) -> None:
    import torch.utils.cpp_extension as cpp

    ss = importlib.import_module("zsl_bench.layers.selective_scan")

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    inputs = {k: v.float() for k, v in make_inputs(1, 4, 20, 4, 2).items()}
    expected = selective_scan(**inputs, delta_softplus=True, backend="torch")
    monkeypatch.setattr(cpp, "load", no_compiler)
    monkeypatch.delenv(ss.SCAN_ENV, raising=False)
    monkeypatch.delenv(FUSED_ENV, raising=False)
    fused_scan.extension.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="zsl_bench.layers.fused_scan"):
            first = fused(**inputs, delta_softplus=True)
            fused(**inputs, delta_softplus=True)
        assert ss.auto_backend("cpu") == "torch"  # tried and failed: "auto" says what runs
        before = ss.scan_backends_run().get("torch", 0)
        selective_scan(**inputs, delta_softplus=True)  # the CPU default falls back too
        assert ss.scan_backends_run()["torch"] == before + 1
    finally:
        fused_scan.extension.cache_clear()  # the next caller loads the real build again
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    warnings = [r for r in caplog.records if "fused CPU scan unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler here" in warnings[0].getMessage()


def test_concurrent_builds_queue_on_an_os_lock_and_clear_a_stale_torch_lock(tmp_path) -> None:
    """torch's own lock is a file a killed builder leaves behind (torch then waits on it forever); ours is an
    OS lock, released when its holder dies, and whoever holds it removes a leftover torch lock."""
    import fcntl

    build = tmp_path / "zsl_bench_scan_cpu_x"
    build.mkdir()
    (build / "lock").touch()  # left by a builder that was killed
    with fused_scan._build_lock(build):
        assert not (build / "lock").exists()
        with open(tmp_path / "zsl_bench_scan_cpu_x.flock") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a second process would wait here
    with open(tmp_path / "zsl_bench_scan_cpu_x.flock") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after the build


def test_the_build_name_depends_on_the_cpu(monkeypatch) -> None:
    """Nodes with different CPUs that share a home directory must not load each other's -march=native build."""
    here = fused_scan._cpu_digest()
    assert here == fused_scan._cpu_digest() and len(here) == 10
    monkeypatch.setattr(fused_scan.platform, "machine", lambda: "some-other-arch")
    assert fused_scan._cpu_digest() != here


def test_loading_the_build_keeps_denormals(built) -> None:
    """-ffast-math is a compile flag only: linking with it would flush denormals to zero for the whole process."""
    assert (torch.tensor([1e-40]) * 1.0).item() != 0.0
