"""``run_trial``: build data, model and optimiser from a config, train, evaluate every epoch, write the run dir."""

from __future__ import annotations

import functools
import logging
import random
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsl_bench.config import ExperimentConfig, to_dict, validate
from zsl_bench.data.protocol import Protocol, make_protocol
from zsl_bench.engine import checkpoint, strategies
from zsl_bench.engine.evaluate import evaluate
from zsl_bench.engine.features import load_trial_dataset, open_inputs
from zsl_bench.engine.loops import Inputs, TrainSettings, class_pools, image_sampler, train_epoch
from zsl_bench.engine.optim import build_optimizer, start_epoch
from zsl_bench.engine.selection import select_by_val, summarise
from zsl_bench.engine.strategy import SINGLE, Single
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
    strategy = strategies.from_config(cfg)  # single, or this worker's part of a ddp/deepspeed process group
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
        strategy: Single = SINGLE,
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
        self.frozen: checkpoint.FrozenPart | None = None  # a frozen backbone's weights, checkpointed once

    def summary(self, status: str) -> dict[str, Any]:
        """The ``summary.json`` object (a :class:`~zsl_bench.record.RunSummary`) for the epochs run so far."""
        self.model_info = self.built.provenance() if self.built is not None else self.model_info
        return summarise(
            self.history,
            status=status,
            compute_s=time.perf_counter() - self.start,
            device=str(self.device),
            stage=self.cfg.meta.stage,
            accuracy=self.cfg.eval.accuracy,  # how CZSL, U and S average (per_class | per_sample)
            **self.strategy.summary_info(),
            **({"model_info": self.model_info} if self.model_info else {}),
        ).dump()

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
        keep, frozen = self.cfg.train.keep_checkpoints, self.frozen
        self.strategy.save_checkpoint(self.writer.dir, state, model, optimizer, best=best, keep=keep, frozen=frozen)

    def run(self, report: Report | None) -> None:
        """Train the epochs after the checkpoint it continues from (all of them when none), evaluating, writing
        and reporting each."""
        setup = self._prepare()
        for epoch in range(setup.first_epoch, self.cfg.train.epochs + 1):
            self._epoch(setup, epoch, report)
        if not self.final and self.history:  # the state it started from already covered every epoch
            self.finish("completed")

    def _prepare(self) -> _Setup:
        """Data, model, optimiser and inputs of the trial, restored from its checkpoint and set up by the strategy."""
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
        if cfg.model.freeze_backbone and isinstance(model, ZslModel):
            self.frozen = checkpoint.FrozenPart.matching(model.state_dict(), model.backbone_state())
        # images; feature vectors; or, with a frozen backbone, its cached outputs and the head-only model
        model, source, spec = open_inputs(cfg, data, spec, model, device, state=self.state)
        gen = torch.Generator().manual_seed(cfg.train.seed)
        first_epoch = self._restore(model, optimizer, gen)
        model.to(device)
        optimizer = self.strategy.setup(model, optimizer, self.state, self.writer.dir)
        return _Setup(
            model=model,
            optimizer=optimizer,
            inputs=Inputs(source, spec, device),
            proto=proto,
            labels=data.labels,
            att=torch.as_tensor(data.split.att, dtype=torch.float32, device=device),
            targets=np.searchsorted(proto.train_classes, data.labels),
            pools=class_pools(data.labels, proto.train_idx, proto.train_classes),
            gen=gen,
            first_epoch=first_epoch,
        )

    def _restore(self, model: ZslModel, optimizer: torch.optim.Optimizer, gen: torch.Generator) -> int:
        """Load the checkpoint the trial continues from into ``model``, ``optimizer`` and ``gen``; the first
        epoch to train."""
        if self.state is None:
            return 1
        if "model" in self.state:  # (deepspeed loads its own checkpoint in setup)
            model.load_state_dict(self.state["model"])
            optimizer.load_state_dict(self.state["optimizer"])
        gen.set_state(self.state["generator"])
        log.info("%s: resuming after epoch %d", self.writer.dir, self.state["epoch"])
        return self.state["epoch"] + 1

    def _epoch(self, s: _Setup, epoch: int, report: Report | None) -> None:
        """Train and evaluate ``epoch``; write its records, checkpoint and summary; then ``report`` it."""
        cfg, device = self.cfg, self.device
        ctx = TrainContext(
            class_attributes=s.att,
            seen_classes=torch.as_tensor(s.proto.train_classes, device=device),
            unseen_classes=torch.as_tensor(s.proto.evals[0].unseen_classes, device=device),
            epoch=epoch,
            generator=s.gen,
            sample_images=image_sampler(s.inputs.source, s.pools, s.inputs.spec, s.gen, device),
        )
        start_epoch(s.optimizer, cfg, epoch)
        settings = TrainSettings(cfg.train.batch_size, cfg.train.grad_accum, cfg.train.grad_clip)
        try:
            losses = train_epoch(
                s.model,
                s.optimizer,
                s.inputs,
                ctx,
                indices=s.proto.train_idx,
                targets=s.targets,
                settings=settings,
                steps=self.strategy,
            )
        except FloatingPointError as exc:
            raise TrialFailed(f"epoch {epoch}: {exc}") from None
        results, test_scores = evaluate(
            s.model, s.inputs, s.proto, s.att, labels=s.labels, settings=cfg.eval, scores_of=self.strategy.class_scores
        )
        self._write_metrics(epoch, losses, results, s.optimizer)
        self.history.append({"epoch": epoch, **results})
        if select_by_val(self.history)["epoch"] == epoch:  # the scores behind the reported U/S (curves, AUSUC)
            self.writer.test_scores(**test_scores, epoch=epoch, gamma=results["test"]["gamma"])
        self.checkpoint(s.model, s.optimizer, s.gen)
        if epoch == cfg.train.epochs:
            self.finish("completed")  # before the last report: Ray may end the process inside it
        else:
            self.writer.summary(self.summary("running"))
        if report is not None:
            report(_flat(epoch, losses, results))

    def _write_metrics(
        self, epoch: int, losses: dict[str, float], results: dict[str, dict[str, Any]], optimizer: Any
    ) -> None:
        """One ``metrics.jsonl`` record per evaluated split of ``epoch``."""
        elapsed = round(time.perf_counter() - self.start, 3)
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
        common = {"train_loss": losses["total"], "train_losses": _loss_parts(losses), "lr": lrs, "time_s": elapsed}
        self.writer.metrics(*({"epoch": epoch, "split": split, **rec, **common} for split, rec in results.items()))


@dataclass
class _Setup:
    """What every epoch of a trial uses, built once by :meth:`_Trial._prepare`."""

    model: ZslModel
    optimizer: Any  # the strategy's: param_groups set by the epoch schedule
    inputs: Inputs
    proto: Protocol
    labels: np.ndarray  # [N] class of every image
    att: torch.Tensor  # [C, A] attributes of every class
    targets: np.ndarray  # [N] row of each training image's class among the seen classes
    pools: dict[str, list[np.ndarray]]  # per seen-class row, the images ``sample_images`` draws from
    gen: torch.Generator
    first_epoch: int


def _loss_parts(losses: dict[str, float]) -> dict[str, float]:
    """The loss entries other than ``total``, rounded as the records store them."""
    return {k: round(v, 6) for k, v in losses.items() if k != "total"}


def _flat(epoch: int, losses: dict[str, float], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What ``report`` gets after an epoch: ``epoch``, ``train/loss``, ``train/<part>``, ``<split>/<metric>``."""
    flat: dict[str, Any] = {"epoch": epoch, "train/loss": losses["total"]}
    flat.update({f"train/{k}": v for k, v in _loss_parts(losses).items()})
    for split, rec in results.items():
        flat.update({f"{split}/{k}": v for k, v in rec.items() if isinstance(v, float)})
    return flat


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


@functools.cache
def _git_sha() -> str | None:
    """The commit of the code this process runs (asked once: the modules are loaded once)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    """(package, version) of the packages a run records, as installed when first asked."""
    found = []
    for pkg in ("zsl-bench", "torch", "transformers", "ray", "optuna", "numpy"):
        try:
            found.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def _versions() -> dict[str, str]:
    return dict(_installed_versions())
