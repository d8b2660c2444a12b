"""The Triton selective scan run for real on CPU tensors by Triton's interpreter: outputs, last states and every
gradient against the float64 loop on small odd shapes, bfloat16, and ``ZSL_BENCH_SCAN=triton``.

Not collected by default (the name does not start with ``test_``): ``TRITON_INTERPRET=1`` must be set before
``triton`` is first imported (its standard library is decorated then), so ``test_triton_scan.py`` runs this file in a
fresh ``pytest`` process with the variable set."""

from __future__ import annotations

import importlib
import os

import pytest
import torch

from zsl_bench.layers.selective_scan import SCAN_ENV, ScanRecord, selective_scan, selective_scan_ref

from .test_selective_scan import make_inputs, rel_err, run_with_grads

ss = importlib.import_module("zsl_bench.layers.selective_scan")  # the module (the package exports the function)
pytest.importorskip("triton", reason="triton is not installed (pip install -e .[dev])")
MODULE = "zsl_bench.layers.triton_scan"


@pytest.fixture(scope="module")
def interpreted():
    """zsl_bench.layers.triton_scan, its kernels built for the interpreter."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("run through test_triton_scan.py (TRITON_INTERPRET=1 before triton is imported)")
    return importlib.import_module(MODULE)


def triton_fn(**kwargs):
    return selective_scan(**kwargs, backend="triton")


CASES = [
    # batch, D, L, N, G (None: B/C [B, N, L]), chunk, with z, with D
    (2, 12, 29, 1, 4, 8, False, True),  # SS2D: N = 1, four groups, no z; 3 channels a group (masked blocks)
    (2, 10, 23, 16, None, 7, True, True),  # Vim: N = 16, plain B/C, z and D
    (1, 6, 19, 3, 2, 5, True, False),  # odd N, two groups, no D
    (2, 5, 13, 2, None, 64, False, False),  # one chunk longer than L
]


@pytest.mark.parametrize(("batch", "dm", "length", "n", "groups", "chunk", "with_z", "with_d"), CASES)
def test_matches_float64_reference_with_gradients(interpreted, batch, dm, length, n, groups, chunk, with_z, with_d):
    inputs = make_inputs(batch, dm, length, n, groups)
    inputs = {k: v for k, v in inputs.items() if (k != "z" or with_z) and (k != "D" or with_d)}
    out64, last64, grads64 = run_with_grads(selective_scan_ref, inputs)
    out32, last32, grads32 = run_with_grads(triton_fn, {k: v.float() for k, v in inputs.items()}, chunk_size=chunk)
    assert out32.dtype == torch.float32 and last32.dtype == torch.float32
    assert rel_err(out32, out64) <= 1e-5
    assert rel_err(last32, last64) <= 1e-5
    for name, g64 in grads64.items():
        assert grads32[name].shape == inputs[name].shape, name
        assert rel_err(grads32[name], g64) <= 1e-5, name


def test_strong_and_weak_decays_are_stable(interpreted) -> None:
    """|A·Δ| up to ~1e4 per step (exp underflows to 0) and down to ~1e-5 (no decay), chunk boundaries included."""
    for a_scale in (1e3, 1e-4):
        inputs = make_inputs(1, 5, 31, 4, None, seed=3, delta_shift=1.0, a_scale=a_scale)
        out64, last64, grads64 = run_with_grads(selective_scan_ref, inputs)
        out32, last32, grads32 = run_with_grads(triton_fn, {k: v.float() for k, v in inputs.items()}, chunk_size=6)
        assert torch.isfinite(out32).all() and rel_err(out32, out64) <= 1e-5
        assert rel_err(last32, last64) <= 1e-5
        for name, g64 in grads64.items():
            assert torch.isfinite(grads32[name]).all() and rel_err(grads32[name], g64) <= 1e-5, name


def test_bfloat16_inputs_keep_a_float32_state(interpreted) -> None:
    x = {k: v.to(torch.bfloat16) for k, v in make_inputs(2, 8, 21, 16, 2).items()}
    x["A"], x["D"], x["delta_bias"] = x["A"].float(), x["D"].float(), x["delta_bias"].float()  # as the models pass
    out64, last64, grads64 = run_with_grads(selective_scan_ref, {k: v.double() for k, v in x.items()})
    out, last, grads = run_with_grads(triton_fn, x, chunk_size=8)
    assert out.dtype == torch.bfloat16 and last.dtype == torch.float32
    assert rel_err(out.float(), out64) <= 1e-2
    assert rel_err(last, last64) <= 1e-5  # the state never passes through bfloat16
    for name, g64 in grads64.items():
        assert grads[name].dtype == x[name].dtype, name
        assert rel_err(grads[name].float(), g64) <= 1e-2, name


def test_options_off_and_inference(interpreted) -> None:
    """No softplus, no bias, no D, no z; under no_grad nothing is recorded for a backward, same results."""
    x = make_inputs(2, 4, 17, 2, None)
    expected, last_e = selective_scan_ref(x["u"], x["delta"].abs(), x["A"], x["B"], x["C"], return_last_state=True)
    with torch.no_grad():
        out, last = triton_fn(
            u=x["u"].float(), delta=x["delta"].abs().float(), A=x["A"], B=x["B"], C=x["C"], return_last_state=True
        )
    assert out.dtype == torch.float32  # float64 inputs are computed in float32
    assert rel_err(out, expected) <= 1e-5 and rel_err(last, last_e) <= 1e-5


def test_forcing_triton_runs_it_and_the_record_says_so(interpreted, monkeypatch) -> None:
    """``ZSL_BENCH_SCAN=triton`` on CPU tensors: the (interpreted) kernel runs, and :class:`ScanRecord` (a model's
    ``model_info["scan"]``) names it, most used first."""
    record = ScanRecord()
    assert str(record).startswith("none run yet")
    monkeypatch.setenv(SCAN_ENV, "triton")
    x = {k: v.float() for k, v in make_inputs(1, 4, 9, 2, None).items()}
    forced = selective_scan(**x, delta_softplus=True)
    assert str(record) == "triton"
    expected = selective_scan(**x, delta_softplus=True, backend="torch")
    torch.testing.assert_close(forced, expected, rtol=1e-5, atol=1e-6)
    assert str(record) == "triton, torch"
