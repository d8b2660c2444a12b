"""Strategies ddp/deepspeed: config generation and checks (fast), and real 2-process runs over gloo on CPU."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from zsl_bench.config import build_config
from zsl_bench.engine import checkpoint, distributed, ds_config, ds_import, strategies
from zsl_bench.engine.finalise import mark_stopped
from zsl_bench.engine.launch import launch, worker_argv, worker_env
from zsl_bench.engine.strategy import NullWriter
from zsl_bench.errors import TrialFailed, UserError

REPO = Path(__file__).resolve().parents[2]
FILES = {"checkpoint", "config.yaml", "done", "metrics.jsonl", "summary.json", "test_scores.npz"}


def ds_cfg(root=None, extra=None, **train):
    overrides = {"train.strategy": "deepspeed", "train.num_workers": 2, **(extra or {})}
    overrides.update({f"train.{k}": v for k, v in train.items()})
    if root is not None:
        overrides.update(
            {
                "data.root": str(root),
                "model.options": {"width": 8},
                "train.batch_size": 32,
                "train.num_threads": 1,
                "train.seed": 3,
                "eval.batch_size": 128,
            }
        )
    return build_config(None, overrides)


# ---------------------------------------------------------------------------------------------- config (fast)


def test_generated_config_maps_the_train_keys():
    cfg = ds_cfg(zero_stage=2, batch_size=16, grad_accum=4, grad_clip=1.5, precision="bf16")
    ds = ds_config.generate(cfg)
    assert ds["train_micro_batch_size_per_gpu"] == 16 and ds["gradient_accumulation_steps"] == 4
    assert ds["train_batch_size"] == 16 * 4 * 2 and ds["gradient_clipping"] == 1.5
    assert ds["zero_optimization"] == {"stage": 2, "contiguous_gradients": True, "overlap_comm": False}
    assert ds["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    assert "bf16" not in ds and "fp16" not in ds and "optimizer" not in ds

    plain = ds_config.generate(ds_cfg(zero_stage=0))
    assert plain["zero_optimization"] == {"stage": 0} and plain["gradient_clipping"] == 0.0
    assert "torch_autocast" not in plain
    offload = ds_config.generate(ds_cfg(zero_stage=3, offload_optimizer=True, precision="fp16"), 8, "cuda")
    assert offload["zero_optimization"]["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    assert offload["torch_autocast"]["dtype"] == "float16" and offload["train_batch_size"] == 64 * 8
    assert ds_config.uses_offload(offload) and not ds_config.uses_offload(plain)
    with pytest.raises(UserError, match="zero_stage to 1, 2 or 3"):
        ds_config.generate(ds_cfg(zero_stage=0, offload_optimizer=True))


def test_shipped_examples_are_what_the_generator_writes():
    """cluster/deepspeed/*.json: the settings documented in cluster/README.md, generated for 8 GPUs."""
    zero2 = ds_cfg(num_workers=8, batch_size=32, grad_accum=2, grad_clip=1.0, zero_stage=2, precision="bf16")
    zero3 = ds_cfg(
        num_workers=8,
        batch_size=16,
        grad_accum=4,
        grad_clip=1.0,
        zero_stage=3,
        precision="bf16",
        offload_optimizer=True,
    )
    for name, cfg in (("zero2.json", zero2), ("zero3_offload.json", zero3)):
        shipped = json.loads((REPO / "cluster" / "deepspeed" / name).read_text())
        assert shipped == ds_config.generate(cfg, device_type="cuda"), name


def test_deepspeed_config_file_is_the_escape_hatch(tmp_path):
    good = tmp_path / "ds.json"
    good.write_text(json.dumps({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}, "bf16": {}}))
    ds = ds_config.resolve(ds_cfg(deepspeed_config=str(good), batch_size=8, grad_clip=2.0))
    assert ds["zero_optimization"]["offload_param"] == {"device": "cpu"} and ds["bf16"] == {}
    assert ds["train_micro_batch_size_per_gpu"] == 8 and ds["gradient_clipping"] == 2.0
    assert ds["train_batch_size"] == 16

    cases = {
        "missing.json": (None, "file not found"),
        "bad.json": ("{not json", "not valid JSON"),
        "list.json": ("[1, 2]", "must hold a JSON object"),
        "optim.json": (json.dumps({"optimizer": {"type": "Adam"}}), "remove the 'optimizer' section"),
        "batch.json": (json.dumps({"train_micro_batch_size_per_gpu": 4}), "disagrees with train.batch_size"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(UserError, match=message) as err:
            ds_config.resolve(ds_cfg(deepspeed_config=str(path), batch_size=8))
        assert "\n" not in str(err.value)
    assert ds_cfg(deepspeed_config="rel/ds.json").train.deepspeed_config == str(Path("rel/ds.json").resolve())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.num_workers": 2}, "needs train.strategy=ddp or deepspeed"),
        ({"train.precision": "bf16"}, "single runs fp32"),
        ({"train.strategy": "ddp", "train.offload_optimizer": True}, "needs train.strategy=deepspeed"),
        ({"train.strategy": "ddp", "train.precision": "fp16"}, "no gradient scaler"),
        ({"train.strategy": "deepspeed", "train.precision": "fp16", "train.device": "cpu"}, "needs a CUDA device"),
        ({"train.strategy": "deepspeed", "model.freeze_backbone": True}, "feature cache"),
    ],
)
def test_settings_that_cannot_run_are_one_line_errors(overrides, message):
    with pytest.raises(UserError, match=message) as err:
        strategies.check(build_config(None, overrides))
    assert "\n" not in str(err.value)


def test_missing_deepspeed_tells_how_to_install(monkeypatch, synth_root, tmp_path, capsys):
    from zsl_bench.cli import main

    monkeypatch.setitem(sys.modules, "deepspeed", None)  # what `import deepspeed` does without the package
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)  # import_deepspeed sets it; restored afterwards
    assert not ds_import.deepspeed_available()
    with pytest.raises(UserError, match=r"pip install 'zsl-bench\[deepspeed\]'"):
        ds_import.import_deepspeed("cpu")
    args = ["train", "--model", "resnet_test", "--dataset", "synth", "--data-root", str(synth_root)]
    args += ["--set", "train.strategy=deepspeed", "--set", "train.num_workers=2", "--out", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs DeepSpeed" in err and "pip install" in err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_shards_cover_the_epoch_with_equal_step_counts():
    indices = np.arange(100, 203)  # 103 images over 4 ranks: padded to 104
    shards = []
    for rank in range(4):
        strategy = object.__new__(distributed.DataParallel)
        strategy.rank, strategy.world_size = rank, 4
        shards.append(strategy.shard(indices, torch.Generator().manual_seed(5)))
    assert {len(s) for s in shards} == {26}
    together = np.concatenate(shards)
    assert set(together) == set(indices) and len(together) == 104
    # the same draws as the single-process shuffle, so the generator stays in step on every rank
    gen = torch.Generator().manual_seed(5)
    order = indices[torch.randperm(len(indices), generator=gen).numpy()]
    assert np.array_equal(shards[1][:3], order[[1, 5, 9]])


def test_worker_command_and_environment(tmp_path):
    argv = worker_argv(tmp_path / "c.yaml", tmp_path / "run", 2, 29555, resume=False)
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert argv[argv.index("--nproc-per-node") + 1] == "2" and argv[argv.index("--master-addr") + 1] == "127.0.0.1"
    assert argv[-4:] == ["zsl_bench.engine.worker", str(tmp_path / "c.yaml"), str(tmp_path / "run"), "--fresh"]
    env = worker_env(ds_cfg(device="cpu", num_threads=3), base={"PATH": "/x"})
    assert env == {"PATH": "/x", "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "3"}
    assert "DS_ACCELERATOR" not in worker_env(build_config(None, {"train.strategy": "ddp"}), base={})


def test_ranks_other_than_zero_write_nothing(tmp_path):
    writer = NullWriter(tmp_path / "run")
    writer.config({"a": 1})
    writer.metrics({"epoch": 1})
    writer.test_scores(scores=np.zeros((1, 1)), y_true=[0], seen=[0], unseen=[0], epoch=1, gamma=0.0)
    writer.done()
    assert writer.dir == tmp_path / "run" and not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------- real 2-process runs (gloo)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def digests(folder: Path) -> list[str]:
    found = sorted(folder.glob("rank*.json"))
    assert [p.name for p in found] == ["rank0.json", "rank1.json"]
    return [json.loads(p.read_text())["digest"] for p in found]


@pytest.mark.integration
@pytest.mark.slow
def test_zero2_run_from_the_cli(synth_root, tmp_path, cli, rank_hooks):
    run, digest_dir = tmp_path / "run", tmp_path / "digests"
    digest_dir.mkdir()
    rank_hooks(digest_dir=digest_dir)
    args = ["train", "--model", "resnet_test", "--dataset", "synth", "--data-root", str(synth_root)]
    for key, value in {
        "train.strategy": "deepspeed",
        "train.num_workers": 2,
        "train.zero_stage": 2,
        "train.epochs": 3,
        "train.batch_size": 32,
        "train.num_threads": 1,
        "model.options.width": 8,
    }.items():
        args += ["--set", f"{key}={value}"]
    code, out, err = cli(*args, "--out", str(run))
    assert code == 0, err[-3000:]
    assert out.startswith(f"run {run}: epoch ")

    assert {p.name for p in run.iterdir()} == FILES  # the normal run directory, nothing per rank
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["zero_stage"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 3
    assert summary["strategy"] == "deepspeed" and summary["workers"] == 2
    recs = records(run)
    assert [(r["epoch"], r["split"]) for r in recs] == [(e, s) for e in (1, 2, 3) for s in ("val", "test")]
    losses = [r["train_loss"] for r in recs[::2]]
    assert losses[2] < losses[1] < losses[0], losses
    assert set(recs[0]["lr"]) == {"backbone", "head"}  # the model's named groups survive ZeRO's flattening

    d0, d1 = digests(digest_dir)
    assert d0 == d1  # every rank holds the same parameters after training
    latest = checkpoint.load_latest(run)
    assert latest["epoch"] == 3 and latest["zero_tag"] == "zero-0003" and latest["workers"] == 2
    shards = {p.name for p in (run / "checkpoint" / "zero-0003").iterdir()}
    assert {f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)} <= shards


@pytest.mark.integration
@pytest.mark.slow
def test_zero3_checkpoint_resumes_to_the_same_state(synth_root, tmp_path, rank_hooks):
    optim = {"optim.schedule": "step", "optim.step_size": 1, "optim.lr_decay": 0.5}
    cfg = ds_cfg(synth_root, optim, zero_stage=3, epochs=3, grad_accum=2, grad_clip=1.0)
    (tmp_path / "d_straight").mkdir()
    (tmp_path / "d_resumed").mkdir()

    rank_hooks(digest_dir=tmp_path / "d_straight")
    straight = launch(cfg, tmp_path / "straight")

    rank_hooks(interrupt_after=1)  # every rank stops right after epoch 1's checkpoint
    with pytest.raises(TrialFailed, match="exited with code"):
        launch(cfg, tmp_path / "resumed")
    cut = tmp_path / "resumed"
    assert not (cut / "done").exists() and [r["epoch"] for r in records(cut)] == [1, 1]
    assert checkpoint.load_latest(cut)["zero_tag"] == "zero-0001"
    # a sweep finalises such a run when its scheduler ended it from outside
    stopped = tmp_path / "stopped"
    shutil.copytree(cut, stopped)
    assert mark_stopped(stopped)
    summary = json.loads((stopped / "summary.json").read_text())
    assert (stopped / "done").exists() and summary["status"] == "stopped" and summary["epochs_run"] == 1

    rank_hooks(digest_dir=tmp_path / "d_resumed")
    resumed = launch(cfg, cut)
    assert resumed["epochs_run"] == 3 and (cut / "done").exists()
    assert resumed["best_by_val"] == straight["best_by_val"]
    strip = ("time_s",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in records(cut)] == [
        {k: v for k, v in r.items() if k not in strip} for r in records(tmp_path / "straight")
    ]
    first, second = digests(tmp_path / "d_straight"), digests(tmp_path / "d_resumed")
    assert first[0] == first[1] == second[0] == second[1]  # the same parameters on both ranks, either way
    assert sorted(p.name for p in (cut / "checkpoint").glob("zero-*")) == sorted(
        p.name for p in (tmp_path / "straight" / "checkpoint").glob("zero-*")
    )


@pytest.mark.integration
@pytest.mark.slow
def test_ddp_run_with_bf16_autocast(synth_root, tmp_path, rank_hooks):
    cfg = build_config(
        None,
        {
            "data.root": str(synth_root),
            "model.options": {"width": 8},
            "train.strategy": "ddp",
            "train.num_workers": 2,
            "train.precision": "bf16",
            "train.epochs": 2,
            "train.batch_size": 32,
            "train.num_threads": 1,
            "train.grad_accum": 2,
        },
    )
    (tmp_path / "d").mkdir()
    rank_hooks(digest_dir=tmp_path / "d")
    summary = launch(cfg, tmp_path / "run")
    assert summary["strategy"] == "ddp" and summary["status"] == "completed"
    assert {p.name for p in (tmp_path / "run").iterdir()} == FILES
    state = checkpoint.load_latest(tmp_path / "run")
    assert state["epoch"] == 2 and "model" in state and "optimizer" in state  # the single-process layout
    d0, d1 = digests(tmp_path / "d")
    assert d0 == d1
