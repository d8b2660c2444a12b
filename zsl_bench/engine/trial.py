"""``run_trial``: build data, model and optimiser from a config, train, evaluate every epoch, write the run dir."""

from __future__ import annotations

import logging
import random
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsl_bench import metrics
from zsl_bench.config import ExperimentConfig, to_dict, validate
from zsl_bench.data.protocol import Protocol, make_protocol
from zsl_bench.data.stream import ImageSource
from zsl_bench.data.transforms import TransformSpec
from zsl_bench.engine import checkpoint, distributed
from zsl_bench.engine.features import load_trial_dataset, open_inputs
from zsl_bench.engine.loops import TrainSettings, class_pools, class_scores, image_sampler, to_score_space
from zsl_bench.engine.optim import build_optimizer, start_epoch
from zsl_bench.engine.selection import select_by_test, select_by_val
from zsl_bench.errors import TrialFailed, UserError
from zsl_bench.models import MODELS, ZslModel, build_model, dataset_options
from zsl_bench.models.base import TrainContext
from zsl_bench.rundir import RunWriter, UnreadableRun, read_run

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]
_SPLIT_SEED = 0  # the held-out validation slice is the same for every trial, whatever its train.seed


def run_trial(
    config: ExperimentConfig | dict[str, Any],
    run_dir: str | Path,
    report: Report | None = None,
    resume: bool = True,
    init_from: str | Path | None = None,
) -> dict[str, Any]:
    """Train and evaluate one configuration into ``run_dir`` and return its summary.

    Writes ``config.yaml`` first; after every epoch one ``metrics.jsonl`` record per split, an updated
    ``summary.json`` (``status`` ``running``) and ``checkpoint/latest.pt``; after the last epoch
    ``status: completed`` and ``done``. ``report(flat_metrics)`` is called once per epoch, after those writes
    (``epoch``, ``train/loss``, ``val/h``, ``test/czsl``, …) so a scheduler can stop the trial. Ray stops a
    trial by raising ``SystemExit`` from ``report``: the run is then finalised as ``status: stopped`` (with
    ``done``) and the exception re-raised. Any other failure writes ``error.txt`` (no ``done``) and re-raises.

    With ``resume`` (the default), a run directory holding the same configuration (``meta`` aside) is
    continued: a finished run is returned as it is, an interrupted one restarts after its last checkpoint.
    ``init_from`` (a checkpoint file of another run, as PBT's exploit step asks) starts this run afresh from that
    state — weights, optimiser, history and the other run's metric records up to its epoch — under this config.
    """
    cfg = config if isinstance(config, ExperimentConfig) else validate(config, "trial config")
    cfg = _with_provenance(cfg)
    run_dir = Path(run_dir)
    strategy = distributed.from_config(cfg)  # single, or this worker's part of a ddp/deepspeed process group
    if init_from is not None:
        state = checkpoint.load(Path(init_from))
        if state is None:
            raise TrialFailed(f"cannot read the checkpoint to start from: {init_from}")
        state = {**state, "compute_s": 0.0}  # this run's compute is its own; the source counts its epochs
        writer = strategy.writer(run_dir)
        writer.inherit_metrics(Path(init_from).parents[1], up_to=state["epoch"])
    else:
        state = _resumable_state(cfg, run_dir) if resume else None
        if state is not None and "summary" in state:
            return state["summary"]
        writer = strategy.writer(run_dir, resume_after=state["epoch"] if state else None)
    writer.config(to_dict(cfg))
    trial = _Trial(cfg, writer, state, strategy)
    try:
        trial.run(report)
    except SystemExit:  # a scheduler (ASHA) stopped the trial
        if trial.history and not trial.final:
            trial.finish("stopped")
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        writer.error(f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc)))
        raise
    return trial.final


def _resumable_state(cfg: ExperimentConfig, run_dir: Path) -> dict[str, Any] | None:
    """``{"summary"}`` of a finished run, the latest checkpoint of an interrupted one, or None (start afresh)."""
    try:
        previous = read_run(run_dir)
    except UnreadableRun:
        return None
    mine = {k: v for k, v in to_dict(cfg).items() if k != "meta"}
    theirs = {k: v for k, v in previous.config.items() if k != "meta"}
    if mine != theirs:
        if (run_dir / "config.yaml").exists():
            log.warning("%s holds another configuration; starting afresh there", run_dir)
        return None
    if previous.done and previous.summary is not None:
        return {"summary": previous.summary}
    return checkpoint.load_latest(run_dir) if cfg.train.checkpoint else None


class _Trial:
    """The state of one running trial: its config, writer and per-epoch history."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        writer: RunWriter,
        state: dict[str, Any] | None = None,
        strategy: distributed.Single = distributed.SINGLE,
    ) -> None:
        self.cfg = cfg
        self.strategy = strategy
        self.writer = writer
        self.state = state  # a checkpoint to continue from
        self.history: list[dict[str, Any]] = list(state["history"]) if state else []
        self.final: dict[str, Any] = {}  # the summary written with ``done``
        self.start = time.perf_counter() - (state["compute_s"] if state else 0.0)
        self.device = strategy.device(_device(cfg.train.device))
        self.model_info: dict[str, Any] = {}  # what the model says about itself (weights, embeddings used)
        self.built: ZslModel | None = None  # asked again at each summary: some entries (the scan) are known late

    def summary(self, status: str) -> dict[str, Any]:
        self.model_info = self.built.provenance() if self.built is not None else self.model_info
        return {
            "status": status,
            "epochs_run": len(self.history),
            "best_by_val": select_by_val(self.history),
            "best_by_test": select_by_test(self.history),
            "compute_s": round(time.perf_counter() - self.start, 3),
            "device": str(self.device),
            "stage": self.cfg.meta.stage,
            "accuracy": self.cfg.eval.accuracy,  # how CZSL, U and S average (per_class | per_sample)
            **self.strategy.summary_info(),
            **({"model_info": self.model_info} if self.model_info else {}),
        }

    def finish(self, status: str) -> None:
        self.final = self.summary(status)
        self.writer.summary(self.final)
        self.writer.done()

    def checkpoint(self, model: ZslModel, optimizer: torch.optim.Optimizer, gen: torch.Generator) -> None:
        """Save ``latest.pt`` (and ``best.pt`` when this epoch is the best by validation H so far)."""
        if not self.cfg.train.checkpoint:
            return
        epoch = self.history[-1]["epoch"]
        state = {
            "epoch": epoch,
            "generator": gen.get_state(),
            "history": self.history,
            "compute_s": time.perf_counter() - self.start,
        }
        best = select_by_val(self.history)["epoch"] == epoch
        # single/ddp: with the model and optimiser state dicts; deepspeed: its own checkpoint beside
        self.strategy.save_checkpoint(self.writer.dir, state, model, optimizer, best, self.cfg.train.keep_checkpoints)

    def run(self, report: Report | None) -> None:
        cfg, device = self.cfg, self.device
        _seed_everything(cfg.train.seed)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        data = load_trial_dataset(cfg.data)  # images, or feature vectors (data.features)
        proto = make_protocol(data.split, data.labels, cfg.meta.stage, cfg.data.holdout_frac, seed=_SPLIT_SEED)

        spec = MODELS.get(cfg.model.name).transform_at(cfg.data.image_size)  # the family's declared pipeline
        spec = replace(spec, hflip=spec.hflip and cfg.train.hflip)
        # the model first: a missing pretrained file or an offline hub id fails before any image is decoded
        options = dataset_options(cfg.model.name, data.name, str(Path(data.root).resolve()), cfg.model.options)
        model = build_model(cfg.model.name, data.split.num_attributes, spec.size, **options)
        self.model_info = model.provenance() if isinstance(model, ZslModel) else {}
        self.built = model if isinstance(model, ZslModel) else None
        optimizer = build_optimizer(model, cfg)
        # images; feature vectors; or, with a frozen backbone, its cached outputs and the head-only model
        model, source, spec = open_inputs(cfg, data, spec, model, device, self.state)
        att = torch.as_tensor(data.split.att, dtype=torch.float32, device=device)  # [C, A]
        targets = np.searchsorted(proto.train_classes, data.labels)  # [N]: row of the seen classes (train images)

        gen = torch.Generator().manual_seed(cfg.train.seed)
        first_epoch = 1
        if self.state is not None:
            if "model" in self.state:  # (deepspeed loads its own checkpoint in setup)
                model.load_state_dict(self.state["model"])
                optimizer.load_state_dict(self.state["optimizer"])
            gen.set_state(self.state["generator"])
            first_epoch = self.state["epoch"] + 1
            log.info("%s: resuming after epoch %d", self.writer.dir, self.state["epoch"])
        model.to(device)
        optimizer = self.strategy.setup(model, optimizer, self.state, self.writer.dir)
        pools = class_pools(data.labels, proto.train_idx, proto.train_classes)
        settings = TrainSettings(cfg.train.batch_size, cfg.train.grad_accum, cfg.train.grad_clip)

        for epoch in range(first_epoch, cfg.train.epochs + 1):
            ctx = TrainContext(
                class_attributes=att,
                seen_classes=torch.as_tensor(proto.train_classes, device=device),
                unseen_classes=torch.as_tensor(proto.evals[0].unseen_classes, device=device),
                epoch=epoch,
                generator=gen,
                sample_images=image_sampler(source, pools, spec, gen, device),
            )
            start_epoch(optimizer, cfg, epoch)
            try:
                losses = self.strategy.train_epoch(
                    model, optimizer, source, proto.train_idx, targets, ctx, settings, spec, device
                )
            except FloatingPointError as exc:
                raise TrialFailed(f"epoch {epoch}: {exc}") from None
            loss = losses["total"]
            parts = {k: round(v, 6) for k, v in losses.items() if k != "total"}
            results, test_scores = _evaluate(
                model, source, spec, data.labels, proto, att, cfg, device, self.strategy.class_scores
            )
            elapsed = round(time.perf_counter() - self.start, 3)
            lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
            for split, rec in results.items():
                self.writer.metrics(
                    {
                        "epoch": epoch,
                        "split": split,
                        **rec,
                        "train_loss": loss,
                        "train_losses": parts,
                        "lr": lrs,
                        "time_s": elapsed,
                    }
                )
            self.history.append({"epoch": epoch, **results})
            if select_by_val(self.history)["epoch"] == epoch:  # the scores behind the reported U/S (curves, AUSUC)
                self.writer.test_scores(**test_scores, epoch=epoch, gamma=results["test"]["gamma"])
            self.checkpoint(model, optimizer, gen)
            if epoch == cfg.train.epochs:
                self.finish("completed")  # before the last report: Ray may end the process inside it
            else:
                self.writer.summary(self.summary("running"))
            if report is not None:
                flat: dict[str, Any] = {"epoch": epoch, "train/loss": loss}
                flat.update({f"train/{k}": v for k, v in parts.items()})
                for split, rec in results.items():
                    flat.update({f"{split}/{k}": v for k, v in rec.items() if isinstance(v, float)})
                report(flat)
        if not self.final and self.history:  # the state it started from already covered every epoch
            self.finish("completed")
        self.strategy.end()


def _evaluate(
    model: ZslModel,
    source: ImageSource,
    spec: TransformSpec,
    labels: np.ndarray,
    proto: Protocol,
    att: torch.Tensor,
    cfg: ExperimentConfig,
    device: torch.device,
    scores_of: Callable[..., np.ndarray] = class_scores,
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """CZSL and GZSL on every evaluation set; gamma is chosen on ``val`` (or fixed by the config).

    CZSL, U and S average over classes or over samples as ``cfg.eval.accuracy`` says (and every record names it).
    Returns the records by split name, and the test scores ``{"scores" [N, C], "y_true" [N], "seen", "unseen"}``
    in the calibrated score space (before gamma)."""
    gamma, gamma_from = (cfg.eval.gamma, "fixed") if cfg.eval.gamma is not None else (None, "val")
    if gamma is None and not any(ev.name == "val" for ev in proto.evals):
        gamma, gamma_from = 0.0, "fixed"  # stage final without a fixed gamma: plain argmax
    out = {}
    acc = cfg.eval.accuracy
    for ev in proto.evals:  # "val" precedes "test", so test reuses the gamma chosen on val
        idx = ev.indices
        raw = scores_of(model, source, idx, att, cfg.eval.batch_size, spec, device)
        scores = to_score_space(raw, np.concatenate([ev.seen_classes, ev.unseen_classes]), cfg.eval.score_space)
        y = labels[idx]
        if gamma is None:
            gamma = metrics.calibrate_gamma(scores, y, ev.seen_classes, ev.unseen_classes, accuracy=acc)
        gz = metrics.gzsl_accuracy(scores, y, ev.seen_classes, ev.unseen_classes, gamma=gamma, accuracy=acc)
        unseen_rows = np.isin(y, ev.unseen_classes)
        czsl = metrics.czsl_accuracy(scores[unseen_rows], y[unseen_rows], ev.unseen_classes, accuracy=acc)
        out[ev.name] = {
            "czsl": float(czsl),
            **{k: float(v) for k, v in gz.items()},
            "gamma": float(gamma),
            "gamma_from": gamma_from,
            "score_space": cfg.eval.score_space,
            "accuracy": acc,
        }
        if ev.name == "test":  # what the papers report: gamma calibrated on test itself (best_by_test)
            oracle = metrics.calibrate_gamma(scores, y, ev.seen_classes, ev.unseen_classes, extra=[gamma], accuracy=acc)
            gz = metrics.gzsl_accuracy(scores, y, ev.seen_classes, ev.unseen_classes, gamma=oracle, accuracy=acc)
            out[ev.name]["calibrated_on_test"] = {"gamma": float(oracle), **{k: float(v) for k, v in gz.items()}}
            test_scores = {"scores": scores, "y_true": y, "seen": ev.seen_classes, "unseen": ev.unseen_classes}
    return out, test_scores


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda but no CUDA device is visible; use train.device=auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _with_provenance(cfg: ExperimentConfig) -> ExperimentConfig:
    from zsl_bench.plugins import provenance

    meta = cfg.meta.model_copy(
        update={
            "git_sha": cfg.meta.git_sha or _git_sha(),
            "versions": cfg.meta.versions or _versions(),
            "providers": cfg.meta.providers or provenance(cfg.model.name, cfg.data.name),
        }
    )
    return cfg.model_copy(update={"meta": meta})


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _versions() -> dict[str, str]:
    found = {}
    for pkg in ("zsl-bench", "torch", "transformers", "ray", "optuna", "numpy"):
        try:
            found[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return found
