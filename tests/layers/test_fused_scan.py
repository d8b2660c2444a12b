"""The opt-in fused CPU forward (a C++ loop compiled on first use): the same outputs, last states and — through
the torch backward restarted from its chunk carries — the same gradients as the float64 reference; how it is
selected; and the fallback when it cannot be built."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("batch", "dm", "length", "n", "groups", "chunk"),
    [
        (2, 8, 37, 4, None, None),  # plain B/C [B, N, L]
        (2, 8, 37, 4, 2, 5),  # grouped, 8 chunks for the backward
        (2, 12, 100, 1, 4, None),  # VMamba-like: N = 1, four groups
        (1, 6, 64, 16, 1, 8),  # L a multiple of T
        (2, 4, 30, 3, None, 1),  # T = 1: a carry before every step
        (2, 32, 100, 16, None, None),  # wide steps: one chunk
    ],
)
def test_fused_matches_float64_reference_with_gradients(built, batch, dm, length, n, groups, chunk) -> None:
    inputs = make_inputs(batch, dm, length, n, groups)
    out64, last64, grads64 = run_with_grads(selective_scan_ref, inputs)
    out32, last32, grads32 = run_with_grads(fused, {k: v.float() for k, v in inputs.items()}, chunk_size=chunk)
    assert out32.dtype == torch.float32
    assert rel_err(out32, out64) <= 1e-5
    assert rel_err(last32, last64) <= 1e-5
    for name, g64 in grads64.items():
        assert rel_err(grads32[name], g64) <= 1e-5, name


def test_fused_float64_is_exact_and_inference_skips_the_carries(built) -> None:
    inputs = make_inputs(2, 6, 83, 5, 3)
    out_r, last_r, grads_r = run_with_grads(selective_scan_ref, inputs)
    out_f, last_f, grads_f = run_with_grads(fused, inputs, chunk_size=9)
    assert rel_err(out_f, out_r) <= 1e-12 and rel_err(last_f, last_r) <= 1e-12
    for name in grads_r:
        assert rel_err(grads_f[name], grads_r[name]) <= 1e-11, name
    with torch.no_grad():
        out_n, last_n = fused(**inputs, delta_softplus=True, return_last_state=True, chunk_size=9)
    assert rel_err(out_n, out_r) <= 1e-12 and rel_err(last_n, last_r) <= 1e-12
    _, _, carries = fused_scan.fused_forward(
        inputs["u"], inputs["u"], inputs["A"], inputs["B"], inputs["C"], 9, 10, keep_carries=False
    )
    assert carries is None


def test_auto_uses_the_fused_forward_only_when_asked(built, monkeypatch) -> None:
    calls = []
    real = fused_scan.fused_forward
    monkeypatch.setattr(fused_scan, "fused_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    inputs = {k: v.float() for k, v in make_inputs(1, 4, 20, 4, None).items()}
    monkeypatch.delenv(FUSED_ENV, raising=False)
    plain = selective_scan(**inputs, delta_softplus=True)
    assert calls == []
    monkeypatch.setenv(FUSED_ENV, "1")
    chosen = selective_scan(**inputs, delta_softplus=True)
    assert calls == [1]
    torch.testing.assert_close(chosen, plain, rtol=1e-5, atol=1e-6)
    selective_scan(**inputs, delta_softplus=True, backend="torch")  # an explicit backend wins over the variable
    assert calls == [1]


def test_a_failed_build_falls_back_to_the_torch_scan_and_logs_once(monkeypatch, caplog) -> None:
    import torch.utils.cpp_extension as cpp

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    inputs = {k: v.float() for k, v in make_inputs(1, 4, 20, 4, 2).items()}
    expected = selective_scan(**inputs, delta_softplus=True, backend="torch")
    monkeypatch.setattr(cpp, "load", no_compiler)
    fused_scan.extension.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="zsl_bench.layers.fused_scan"):
            first = fused(**inputs, delta_softplus=True)
            fused(**inputs, delta_softplus=True)
    finally:
        fused_scan.extension.cache_clear()  # the next caller loads the real build again
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    warnings = [r for r in caplog.records if "fused CPU scan unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler here" in warnings[0].getMessage()


def test_the_build_name_depends_on_the_cpu(monkeypatch) -> None:
    """Nodes with different CPUs that share a home directory must not load each other's -march=native build."""
    here = fused_scan._cpu_digest()
    assert here == fused_scan._cpu_digest() and len(here) == 10
    monkeypatch.setattr(fused_scan.platform, "machine", lambda: "some-other-arch")
    assert fused_scan._cpu_digest() != here


def test_loading_the_build_keeps_denormals(built) -> None:
    """-ffast-math is a compile flag only: linking with it would flush denormals to zero for the whole process."""
    assert (torch.tensor([1e-40]) * 1.0).item() != 0.0
