"""GPU acceptance check: prove the GPU paths in one command (≤ 8 minutes on one GPU, no network); print one JSON object.

Usage::

    python benchmarks/gpu_check.py [--dry-run] [--budget-s 450] [--steps 3] [--out DIR]

Parts, each recorded under its name with ``status`` ``ok`` / ``failed`` (``error``) / ``skipped`` (``reason``); a
failure never stops the next part, and GPU memory is released between parts (``memory_after_mib``):

* ``scan``: the selective scan at (B 2, D 192, L 12,544, N 1, grouped K = 4) and (B 2, D 384, L 197, N 16, z): per
  backend (torch, triton, mamba_ssm when it imports) the max relative error against the float64 loop (output, last
  state, every gradient), forward and forward+backward ms, their ratio to torch, and peak memory;
* ``zeromamba_vmamba_s`` (448 px, batch 32) per scan backend, ``duet_deit_b`` (224 px) and ``resnet101_ale`` (448 px):
  training step (bf16 autocast, random init; forward, the model's generic loss, backward, SGD) time, images/s and
  peak memory. DUET is timed through that generic step (vision branch), not its masked-text branches;
* ``train_deepspeed`` (ZeRO-2) and ``train_ddp``: one worker each, ``zsl-bench train`` of a tiny model on the
  synthetic data, checked for a complete run directory;
* ``imports``: which optional packages import, and that ``import zsl_bench.engine`` loads neither ray nor optuna.

``--dry-run`` runs the same parts at tiny shapes on the CPU (the Triton kernels through ``TRITON_INTERPRET=1``), so
CI keeps the script working. Parts left when ``--budget-s`` is spent are skipped.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class Skip(Exception):
    """A part that cannot run here; the message is the reason."""


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU (CI)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip the parts left after this many seconds")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per model (after 2 warm-ups)")
    parser.add_argument("--out", type=Path, default=None, help="where the train parts write (default: a temp dir)")
    return parser.parse_args()


ARGS = parse()
if ARGS.dry_run:  # before triton is first imported: its standard library is decorated then
    os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import torch  # noqa: E402

from zsl_bench.layers.selective_scan import SCAN_ENV, ScanRecord, selective_scan  # noqa: E402

DEVICE = torch.device("cpu" if ARGS.dry_run or not torch.cuda.is_available() else "cuda")
SCAN_SHAPES = {  # name: (B, D, L, N, G, z) ; the dry run shrinks D and L
    "B2_D192_L12544_N1_G4": (2, 192, 12544, 1, 4, False),
    "B2_D384_L197_N16": (2, 384, 197, 16, None, True),
}
MODELS = {  # name: (image size, batch, options); dry run: the tiny model of the family
    "zeromamba_vmamba_s": (448, 32, {"attribute_embeddings": "random"}, "zeromamba_test"),
    "duet_deit_b": (224, 32, {"vision_pretrained": "none", "text_pretrained": "none"}, "duet_test"),
    "resnet101_ale": (448, 32, {"pretrained": "none"}, "resnet_test"),
}


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def peak_reset() -> int:
    """Reset the CUDA peak counter; return the bytes allocated now (0 on the CPU)."""
    if DEVICE.type != "cuda":
        return 0
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def peak_mib(base: int) -> float | None:
    return round((torch.cuda.max_memory_allocated() - base) / 2**20, 1) if DEVICE.type == "cuda" else None


def scan_backends() -> list[str]:
    names = ["torch"]
    if has("triton") and (DEVICE.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"):
        names.append("triton")
    if DEVICE.type == "cuda" and has("mamba_ssm"):
        names.append("mamba_ssm")
    return names


# ----------------------------------------------------------------------------------------------------------------
# Scan
# ----------------------------------------------------------------------------------------------------------------
def scan_inputs(batch: int, dm: int, length: int, n: int, groups: int | None, with_z: bool) -> dict[str, torch.Tensor]:
    """Mamba-like inputs in float64 on DEVICE (S4D-real A, softplus⁻¹ of Δ in [1e-3, 0.1])."""
    g = torch.Generator().manual_seed(0)
    bc = (batch, n, length) if groups is None else (batch, groups, n, length)
    x = {
        "u": torch.randn(batch, dm, length, generator=g),
        "delta": torch.randn(batch, dm, length, generator=g) * 0.5,
        "A": -torch.arange(1, n + 1, dtype=torch.float64).repeat(dm, 1),
        "B": torch.randn(*bc, generator=g),
        "C": torch.randn(*bc, generator=g),
        "D": torch.ones(dm),
        "delta_bias": torch.log(torch.expm1(torch.empty(dm).uniform_(1e-3, 0.1, generator=g))),
    }
    if with_z:
        x["z"] = torch.randn(batch, dm, length, generator=g)
    return {k: v.double().to(DEVICE) for k, v in x.items()}


def scan_call(backend: str, x: dict[str, torch.Tensor], grad: bool) -> tuple[torch.Tensor, ...]:
    """(out, last[, gradients of a fixed functional]) of one backend (``ref``: the float64 loop)."""
    leaves = {k: v.detach().requires_grad_(grad) for k, v in x.items()}
    out, last = selective_scan(**leaves, delta_softplus=True, return_last_state=True, backend=backend)
    if not grad:
        return out, last
    w = torch.linspace(-1, 1, out.numel(), device=out.device, dtype=out.dtype).view_as(out)
    grads = torch.autograd.grad((out * w).sum() + last.sum(), list(leaves.values()))
    return (out, last, *grads)


def timed(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Minimum milliseconds of ``fn`` over ``repeats`` calls after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return round(best * 1e3, 3)


def scan_case(shape: tuple) -> dict[str, Any]:
    x64 = scan_inputs(*shape)
    ref = scan_call("ref", x64, grad=True)
    x32 = {k: v.float() for k, v in x64.items()}
    rows: dict[str, Any] = {}
    for backend in scan_backends():
        try:
            got = scan_call(backend, x32, grad=True)
            pairs = zip(got, ref, strict=True)
            err = max(((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in pairs)
            base = peak_reset()
            fwd_bwd = timed(lambda b=backend: scan_call(b, x32, grad=True))
            row = {"max_rel_error": err, "fwd_bwd_ms": fwd_bwd, "peak_mib": peak_mib(base)}
            with torch.no_grad():
                row["forward_ms"] = timed(lambda b=backend: scan_call(b, x32, grad=False))
            rows[backend] = row
        except Exception as exc:  # one backend failing must not hide the others
            rows[backend] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    torch_row = rows.get("torch", {})
    for row in rows.values():
        for key in ("forward_ms", "fwd_bwd_ms"):
            if key in row and torch_row.get(key):
                row[f"{key.split('_ms')[0]}_speedup_vs_torch"] = round(torch_row[key] / row[key], 2)
    return rows


def part_scan() -> dict[str, Any]:
    out = {}
    for name, shape in SCAN_SHAPES.items():
        if ARGS.dry_run:
            n, g, z = shape[3:]
            shape, name = (1, 8, 37 if n == 1 else 13, n, g, z), f"{name}_dry"
        out[name] = scan_case(shape)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------
def step_stats(model: torch.nn.Module, images: torch.Tensor, att: torch.Tensor) -> dict[str, Any]:
    """Training steps under bf16 autocast: median step seconds, images/s and peak memory."""
    target = torch.arange(images.shape[0], device=DEVICE) % att.shape[0]
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    base, times = peak_reset(), []
    for i in range(ARGS.steps + 2):
        sync()
        start = time.perf_counter()
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            loss = model.loss(model(images), {"image": images, "target": target}, att)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        if i >= 2:
            times.append(time.perf_counter() - start)
    step = sorted(times)[len(times) // 2]
    return {"step_s": round(step, 4), "images_per_s": round(images.shape[0] / step, 2), "peak_mib": peak_mib(base)}


def part_model(name: str) -> dict[str, Any]:
    from zsl_bench.models import build_model

    size, batch, options, tiny = MODELS[name]
    if ARGS.dry_run:
        name, size, batch = tiny, 64 if tiny == "zeromamba_test" else 32, 2
        options = {k: v for k, v in options.items() if k != "attribute_embeddings"}
    attributes, seen = (13, 24) if ARGS.dry_run else (312, 150)
    torch.manual_seed(0)
    model = build_model(name, attributes, size, **options).to(DEVICE)
    images = torch.randn(batch, 3, size, size, device=DEVICE)
    att = torch.nn.functional.normalize(torch.rand(seen, attributes, device=DEVICE), dim=1)
    result: dict[str, Any] = {"model": name, "image_size": size, "batch": batch}
    if not name.startswith("zeromamba"):
        return {**result, **step_stats(model, images, att)}
    for backend in scan_backends():
        if ARGS.dry_run and backend == "triton":  # ~45 s a step in the interpreter; the scan part tests the kernels
            result[backend] = {"status": "skipped", "reason": "dry run: the Triton interpreter is too slow for a model"}
            continue
        os.environ[SCAN_ENV] = backend
        record = ScanRecord()
        try:
            result[backend] = {**step_stats(model, images, att), "scan_ran": str(record)}
        except Exception as exc:
            result[backend] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            os.environ.pop(SCAN_ENV, None)
            release()
    return result


# ----------------------------------------------------------------------------------------------------------------
# zsl-bench train, imports
# ----------------------------------------------------------------------------------------------------------------
def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [sys.executable, "-m", "zsl_bench.cli", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def part_train(strategy: str, root: Path) -> dict[str, Any]:
    if strategy == "deepspeed" and not has("deepspeed"):
        raise Skip("deepspeed is not installed")
    data = root / "synth"
    if not data.exists():
        proc = cli("data", "synth", "--out", str(data))
        if proc.returncode:
            raise RuntimeError(f"data synth failed: {proc.stderr[-800:]}")
    run = root / f"run_{strategy}"
    sets = [f"train.strategy={strategy}", "train.num_workers=1", "train.epochs=1", "train.batch_size=8"]
    sets += [f"train.device={DEVICE.type}", "train.precision=" + ("fp32" if ARGS.dry_run else "bf16")]
    sets += ["train.zero_stage=2"] if strategy == "deepspeed" else []
    start = time.perf_counter()
    proc = cli("train", "--model", "resnet_test", "--dataset", "synth", "--data-root", str(data), "--out", str(run),
               *(a for s in sets for a in ("--set", s)))  # fmt: skip
    files = sorted(p.name for p in run.iterdir()) if run.exists() else []
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    complete = {"config.yaml", "metrics.jsonl", "summary.json", "done"} <= set(files)
    if proc.returncode or not complete or summary.get("status") != "completed":
        raise RuntimeError(f"rc {proc.returncode}, files {files}, stderr: {proc.stderr[-1200:]}")
    keys = ("strategy", "workers", "device")
    info = {k: summary.get(k) for k in keys}
    return {"train_s": round(time.perf_counter() - start, 1), "files": files, "run_status": summary["status"], **info}


def part_imports() -> dict[str, Any]:
    code = "import sys, zsl_bench.engine; print([m for m in ('ray', 'optuna') if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    optional = ("triton", "mamba_ssm", "causal_conv1d", "deepspeed", "ray", "optuna", "pydantic", "transformers")
    return {"engine_imports_ray_or_optuna": proc.stdout.strip() or proc.stderr[-300:],
            "installed": {m: has(m) for m in optional}}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------------
def release() -> float | None:
    """Free what the last part left (GPU cache included); return the MiB still allocated."""
    gc.collect()
    if DEVICE.type != "cuda":
        return None
    torch.cuda.empty_cache()
    return round(torch.cuda.memory_allocated() / 2**20, 1)


def run_part(name: str, fn: Callable[[], dict[str, Any]], deadline: float) -> dict[str, Any]:
    if time.perf_counter() > deadline:
        return {"status": "skipped", "reason": f"time budget of {ARGS.budget_s:.0f} s spent"}
    start = time.perf_counter()
    try:
        result = {"status": "ok", **fn()}
    except Skip as exc:
        result = {"status": "skipped", "reason": str(exc)}
    except Exception as exc:
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["memory_after_mib"] = release()
    print(json.dumps({"part_done": name, **result})[:400], file=sys.stderr, flush=True)
    return result


def main() -> None:
    start = time.perf_counter()
    deadline = start + ARGS.budget_s
    root = ARGS.out or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    root.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu",
        "dry_run": ARGS.dry_run,
        "torch": torch.__version__,
        "scan_backends": scan_backends(),
    }
    parts: dict[str, Callable[[], dict[str, Any]]] = {
        "imports": part_imports,
        "scan": part_scan,
        **{name: (lambda n=name: part_model(n)) for name in MODELS},
        "train_deepspeed": lambda: part_train("deepspeed", root),
        "train_ddp": lambda: part_train("ddp", root),
    }
    for name, fn in parts.items():
        report[name] = run_part(name, fn, deadline)
    report["total_s"] = round(time.perf_counter() - start, 1)
    report["all_ok"] = all(report[n]["status"] in ("ok", "skipped") for n in parts)
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
