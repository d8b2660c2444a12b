"""The Triton selective scan: its kernels under Triton's interpreter (``triton_cases.py``, in a fresh process), and
the backend dispatch — mamba_ssm → triton → torch, ``ZSL_BENCH_SCAN`` — with what it records for ``model_info``."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zsl_bench.layers.selective_scan import SCAN_ENV, ScanRecord, selective_scan

from .test_selective_scan import make_inputs

ss = importlib.import_module("zsl_bench.layers.selective_scan")  # the module (the package exports the function)
CASES = Path(__file__).with_name("triton_cases.py")
ROOT = Path(__file__).resolve().parents[2]


def small() -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in make_inputs(1, 4, 9, 2, None).items()}


def test_the_kernels_match_the_float64_reference_under_the_interpreter() -> None:
    """Forward and backward of every shape class (see triton_cases.py), on CPU tensors with TRITON_INTERPRET=1."""
    pytest.importorskip("triton", reason="triton is not installed (pip install -e .[dev])")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env.pop(SCAN_ENV, None)
    cmd = [sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


def test_each_backend_is_chosen_when_expected(monkeypatch) -> None:
    monkeypatch.delenv(SCAN_ENV, raising=False)
    monkeypatch.setenv(ss.FUSED_ENV, "0")  # the CPU default (fused) is tested in test_fused_scan.py
    monkeypatch.setattr(ss, "_TRITON_BROKEN", [])
    before = ss.scan_backends_run()
    monkeypatch.setattr(ss, "_cuda_scan", lambda: pytest.fail("a kernel was looked up for CPU tensors"))
    selective_scan(**small(), delta_softplus=True)
    assert ss.scan_backends_run()["torch"] == before.get("torch", 0) + 1
    assert ss.auto_backend("cpu") == "torch"

    # CUDA devices (the lookups are simulated: this tests their order)
    monkeypatch.setattr(ss, "_cuda_scan", lambda: object())
    monkeypatch.setattr(ss, "_triton_scan", lambda: object())
    assert ss.auto_backend("cuda") == "mamba_ssm"
    monkeypatch.setattr(ss, "_cuda_scan", lambda: None)
    assert ss.auto_backend("cuda") == "triton"
    assert ss.auto_backend("cuda", torch.float64) == "torch"  # the kernels compute in float32
    monkeypatch.setattr(ss, "_triton_scan", lambda: None)
    assert ss.auto_backend("cuda") == "torch"

    for name in ("torch", "triton", "mamba_ssm", "fused"):
        monkeypatch.setenv(SCAN_ENV, name)
        assert ss.auto_backend("cuda") == ss.auto_backend("cpu") == name
    monkeypatch.setenv(SCAN_ENV, "cuda")
    with pytest.raises(ValueError, match=SCAN_ENV):
        ss.auto_backend("cpu")


def test_the_fused_variable_still_works(monkeypatch) -> None:
    monkeypatch.delenv(SCAN_ENV, raising=False)
    monkeypatch.setenv(ss.FUSED_ENV, "1")
    assert ss.auto_backend("cpu") == "fused"
    assert ss.auto_backend("cuda") in ("mamba_ssm", "triton", "torch")  # CPU only


def test_a_forced_kernel_that_cannot_run_raises(monkeypatch) -> None:
    monkeypatch.setenv(SCAN_ENV, "mamba_ssm")
    with pytest.raises(RuntimeError, match="mamba-ssm"):  # CPU tensors
        selective_scan(**small())
    monkeypatch.setenv(SCAN_ENV, "triton")
    monkeypatch.setattr(ss, "_triton_scan", lambda: None)
    with pytest.raises(RuntimeError, match="triton"):
        selective_scan(**small())


def test_a_failing_kernel_falls_back_to_torch_for_good(monkeypatch, caplog) -> None:
    """A compile error under "auto" (an unsupported GPU, say) is logged and the torch scan runs from then on."""

    class Broken:
        @staticmethod
        def triton_selective_scan(*args, **kwargs):
            raise RuntimeError("PassManager::run failed")

    monkeypatch.setattr(ss, "_triton_scan", lambda: Broken)
    monkeypatch.setattr(ss, "_cuda_scan", lambda: None)
    monkeypatch.setattr(ss, "_TRITON_BROKEN", [])
    monkeypatch.delenv(SCAN_ENV, raising=False)
    x = ss._ScanArgs(*small().values(), True)
    assert ss.auto_backend("cuda") == "triton"
    with caplog.at_level(logging.WARNING, logger=ss.__name__):
        assert ss._run_kernel("triton", x, None, forced=False) is None
    assert "PassManager" in caplog.text
    assert ss.auto_backend("cuda") == "torch"
    with pytest.raises(RuntimeError, match="PassManager"):  # forced: the error is not hidden
        ss._run_kernel("triton", x, None, forced=True)


def test_the_zeromamba_model_records_its_scan(monkeypatch) -> None:
    from zsl_bench.models import build_model

    monkeypatch.delenv(SCAN_ENV, raising=False)
    monkeypatch.setenv(ss.FUSED_ENV, "0")  # the CPU default (fused) is tested in test_fused_scan.py
    torch.manual_seed(0)
    model = build_model("zeromamba_test", 13, 64)
    assert model.provenance()["scan"] == "none run yet (auto on cpu: torch)" or torch.cuda.is_available()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert model.provenance()["scan"] == "torch"
    assert str(ScanRecord()).startswith("none run yet")


def test_mamba_ssm_is_used_when_installed() -> None:
    pytest.importorskip("mamba_ssm", reason="mamba-ssm is not installed")
    if not torch.cuda.is_available():
        pytest.skip("mamba-ssm needs CUDA tensors")
    record = ScanRecord()
    selective_scan(**{k: v.cuda() for k, v in small().items()})
    assert str(record) == "mamba_ssm"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("n", "groups", "dtype"), [(1, 4, torch.float32), (16, None, torch.float32), (16, 2, torch.bfloat16)]
)
def test_compiled_kernels_match_the_float64_reference_on_cuda(n, groups, dtype) -> None:
    """The compiled kernels (not the interpreter): the CUDA-dispatch tolerances, fp32 and bf16 inputs."""
    pytest.importorskip("triton")
    from .test_selective_scan import rel_err, run_with_grads

    inputs = {k: v.cuda() for k, v in make_inputs(2, 64, 300, n, groups).items()}
    low = {k: v.to(dtype) if k not in ("A", "D", "delta_bias") else v.float() for k, v in inputs.items()}
    as64 = {k: v.double() for k, v in low.items()}  # the reference sees the same rounded inputs
    out64, last64, grads64 = run_with_grads(lambda **kw: selective_scan(**kw, backend="ref"), as64)
    out, last, grads = run_with_grads(lambda **kw: selective_scan(**kw, backend="triton", chunk_size=64), low)
    tol = (1e-4, 1e-3) if dtype == torch.float32 else (1e-2, 2e-2)
    assert rel_err(out, out64) <= tol[0] and rel_err(last, last64) <= tol[0]
    for name in grads64:
        assert rel_err(grads[name], grads64[name]) <= tol[1], name
