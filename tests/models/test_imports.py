"""Imports on demand: the models that do not need transformers (nor Ray, Optuna, DeepSpeed) train without importing
them, the plain-torch ResNet is interchangeable with transformers' ``ResNetModel``, and lazy imports are safe when
two threads run trials at once in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from zsl_bench.models.resnet import ResNet, ResNetArch

HEAVY = ("transformers", "ray", "optuna", "deepspeed", "timm")


def _run_python(code: str, *args: str, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter (cold imports); its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_tiny_cnn_and_classic_head_train_without_heavy_imports(synth_root: Path, synth_res101: Path, tmp_path: Path):
    code = """
        import json, sys
        from zsl_bench.engine import run_trial

        images, features, out = sys.argv[1:4]
        common = {"train": {"epochs": 1, "seed": 0, "num_threads": 1, "checkpoint": False}}
        resnet = {"model": {"name": "resnet_test", "options": {"width": 8}}, "data": {"name": "synth", "root": images}}
        ale = {"model": {"name": "ale_test"}, "data": {"name": "synth", "root": features, "features": "res101"}}
        summaries = [run_trial({**cfg, **common}, f"{out}/{i}") for i, cfg in enumerate([resnet, ale])]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[4].split(","))
        print(json.dumps({"status": [s["status"] for s in summaries], "heavy": heavy}))
    """
    got = _run_python(code, str(synth_root), str(synth_res101), str(tmp_path), ",".join(HEAVY))
    assert got == {"status": ["completed", "completed"], "heavy": []}


def test_two_threads_run_trials_at_once_from_cold_imports(synth_root: Path, tmp_path: Path):
    """Each pair starts in a fresh interpreter, so both threads hit the lazy imports (the model registry's modules,
    and for vit/deit transformers, whose cold import raced: ``cannot import name 'ResNetConfig'``) together."""
    code = """
        import json, sys, threading
        from zsl_bench.engine import run_trial

        root, out, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
        tiny = {"resnet_test": {"width": 8}, "vit_test": {"hidden": 32, "layers": 1, "heads": 2, "patch_size": 16}}
        tiny["deit_test"] = tiny["vit_test"]
        barrier, results = threading.Barrier(len(names)), {}

        def trial(i, name):
            cfg = {
                "model": {"name": name, "options": tiny[name]},
                "data": {"name": "synth", "root": root},
                "train": {"epochs": 1, "seed": i, "num_threads": 1, "checkpoint": False},
            }
            barrier.wait()
            try:
                results[i] = run_trial(cfg, f"{out}/{i}")["status"]
            except BaseException as exc:
                results[i] = f"{type(exc).__name__}: {exc}"

        threads = [threading.Thread(target=trial, args=(i, n)) for i, n in enumerate(names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps([results[i] for i in range(len(names))]))
    """
    for names in ("vit_test,deit_test", "resnet_test,resnet_test"):
        got = _run_python(code, str(synth_root), str(tmp_path / names.replace(",", "-")), names)
        assert got == ["completed", "completed"], names


@pytest.mark.parametrize(
    "arch",
    [
        ResNetArch(embedding_size=8, hidden_sizes=(8, 16, 32), depths=(1, 2, 1), layer_type="basic"),
        ResNetArch(embedding_size=8, hidden_sizes=(16, 32), depths=(2, 1), downsample_in_bottleneck=True),
        ResNetArch(embedding_size=8, hidden_sizes=(16, 32), depths=(1, 1), downsample_in_first_stage=True),
    ],
    ids=["basic", "bottleneck-down-in-1x1", "bottleneck-down-in-first-stage"],
)
def test_plain_resnet_is_interchangeable_with_transformers(arch: ResNetArch, tmp_path: Path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(5)
    theirs = transformers.ResNetModel(transformers.ResNetConfig(**arch.config_kwargs()))
    after_theirs = torch.random.get_rng_state()
    torch.manual_seed(5)
    ours = ResNet(arch)
    assert torch.equal(torch.random.get_rng_state(), after_theirs)  # the same draws: later inits stay the same
    mine, other = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(other)
    assert all(torch.equal(mine[k], other[k]) for k in mine)  # the same seed gives the same weights
    x = torch.randn(2, 3, 32, 32)
    for train in (True, False):
        ours.train(train), theirs.train(train)
        a, b = ours(pixel_values=x), theirs(pixel_values=x)
        torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, rtol=0, atol=0)
        torch.testing.assert_close(a.pooler_output, b.pooler_output, rtol=0, atol=0)
    ours.save_pretrained(tmp_path)  # a directory transformers loads
    loaded = transformers.ResNetModel.from_pretrained(tmp_path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in mine.items())
    assert ours.config.hidden_sizes == list(arch.hidden_sizes)
