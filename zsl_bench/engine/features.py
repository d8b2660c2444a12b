"""What a trial trains on when it need not run a backbone: feature datasets and the frozen-backbone feature cache.

:func:`open_inputs` decides, after the model is built:

* a feature dataset (``data.features``, a :class:`~zsl_bench.data.features.FeatureDataset`): its feature source,
  for a model whose family declares ``inputs="features"`` (the classic heads);
* ``model.freeze_backbone`` with ``data.feature_cache`` (the default): the backbone's outputs
  (``model.forward_backbone(images)``, a tensor or a dict of tensors) for every image of the dataset, extracted
  once into the :class:`~zsl_bench.data.feature_store.FeatureStore` and memory-mapped by every trial that asks for
    the same key; the trial then trains :class:`HeadOnly` (``forward = model.forward_head``). With ``train.hflip``
  the features of the flipped images a trial can train on (:func:`trainable_rows`: all but the test images, which
  are only ever evaluated, unflipped) are cached too, and each training sample takes the flipped view with the
  same draw from the trial's generator as the image path's random flip: both paths give identical metrics;
* anything else: the images, as before.

The cache key hashes everything the cached tensors depend on: the model name and class, the model options that
are not head-only (the family's declared ``head_options``), the bytes of the backbone's state dict (so pretrained
weights from a file, or a random init that depends on the seed, give their own entries), the dataset (name, root,
digest of the ordered image list), the deterministic transform, and whether and of which images the flipped view
is stored.

The extraction (:func:`extract`) reads each image once, runs its plain and flipped views in one no-grad forward,
in the trial's threads and on its device.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zsl_bench.config import DataConfig, ExperimentConfig
from zsl_bench.data.cache import list_digest
from zsl_bench.data.datasets import ZslDataset, default_root, load_dataset
from zsl_bench.data.feature_store import FeatureStore, Writer
from zsl_bench.data.features import (
    FLIP_SUFFIX,
    SINGLE,
    FeatureDataset,
    FeatureSource,
    load_feature_dataset,
)
from zsl_bench.data.stream import ImageSource, batches, open_images
from zsl_bench.data.transforms import TransformSpec, augment
from zsl_bench.engine.checkpoint import tensors_digest
from zsl_bench.errors import UserError
from zsl_bench.memo import KeepLast, path_stamp
from zsl_bench.models import MODELS, ModelSpec
from zsl_bench.models.base import ZslModel

log = logging.getLogger(__name__)

KEY_VERSION = 2  # bump when what an entry holds changes meaning (2: flips of the trainable images only)


_DATASETS: KeepLast[ZslDataset] = KeepLast()  # the last dataset a trial of this process loaded
_IMAGES_DIGEST: KeepLast[str] = KeepLast()  # the digest of the image list last digested


def load_trial_dataset(data: DataConfig) -> ZslDataset:
    """The dataset of a trial: with ``data.features`` a :class:`FeatureDataset` (no images needed), else images.

    Loaded, with every check (split, image list, each image on disk), once per process while the entries of the
    dataset folder keep their names, sizes and modification times (:func:`path_stamp`); the trials of a sweep
    share it. Treat it as read-only."""
    root = Path(data.root if data.root is not None else default_root(data.name)).resolve()
    key = (data.name, data.features, str(root), path_stamp(root) if root.is_dir() else ())
    if data.features:
        return _DATASETS.get(key, lambda: load_feature_dataset(data.name, root, data.features))
    return _DATASETS.get(key, lambda: load_dataset(data.name, root))


def images_digest(paths: list[Path]) -> str:
    """:func:`~zsl_bench.data.cache.list_digest` of ``paths``, computed once for the list a process's trials share
    (:func:`load_trial_dataset`); comparing that list with itself costs a pointer check per entry."""
    return _IMAGES_DIGEST.get(paths, lambda: list_digest(paths))


class HeadOnly(ZslModel):
    """The head of a model with a frozen backbone, as a model of its own.

    ``forward(features)`` is ``model.forward_head(features)`` (features: what ``model.forward_backbone`` returns,
    a tensor or dict of tensors with a leading batch dimension). ``loss``, ``class_scores``, ``param_groups``
    (minus the backbone's parameters), ``freeze_backbone`` delegate; ``state_dict``/``load_state_dict`` are the
    full model's, so checkpoints are the same with and without the cache. ``train(mode)`` sets the mode of the
    model's head modules only: the frozen backbone, which never runs here, stays in eval mode unvisited.
    """

    def __init__(self, model: ZslModel) -> None:
        super().__init__()
        self.model = model
        self._head = head_children(model)  # whose mode training sets; None: the model's own train()

    def train(self, mode: bool = True) -> HeadOnly:
        if self._head is None:
            self.model.train(mode)
        else:
            self.model.training = mode
            for child in self._head:
                child.train(mode)
        self.training = mode
        return self

    def forward(self, features: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.forward_head(features)

    def class_scores(self, out: dict[str, torch.Tensor], class_attributes: torch.Tensor) -> torch.Tensor:
        return self.model.class_scores(out, class_attributes)

    def loss(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], class_attributes_seen: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return self.model.loss(out, batch, class_attributes_seen)

    def param_groups(self) -> dict[str, list[nn.Parameter]] | None:
        groups = self.model.param_groups()
        if groups is None:
            return None
        frozen = {id(p) for p in self.model.backbone_parameters()}
        return {name: [p for p in params if id(p) not in frozen] for name, params in groups.items()}

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.model.backbone_parameters())

    def freeze_backbone(self) -> None:
        self.model.freeze_backbone()

    def provenance(self) -> dict[str, str]:
        return self.model.provenance()

    def backbone_state(self) -> dict[str, torch.Tensor]:
        return self.model.backbone_state()

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)


def head_children(model: ZslModel) -> list[nn.Module] | None:
    """The children of ``model`` that hold no backbone parameter (the head's modules, parameter-free ones too), or
    None when a child holds backbone and head parameters both."""
    frozen = {id(p) for p in model.backbone_parameters() or []}
    head = []
    for child in model.children():
        held = [id(p) in frozen for p in child.parameters()]
        if any(held) and not all(held):
            return None
        if not any(held):
            head.append(child)
    return head


def open_inputs(
    cfg: ExperimentConfig,
    data: ZslDataset,
    spec: TransformSpec,
    model: ZslModel,
    device: torch.device,
    *,
    state: dict[str, Any] | None = None,
) -> tuple[ZslModel, ImageSource | FeatureSource, TransformSpec]:
    """(model to train, source of its inputs, transform) for a trial; see the module docstring.

    Call it after ``build_optimizer`` (which freezes the backbone). ``state``: the checkpoint the trial continues
    from; its weights are loaded first, so the features come from the backbone that will be used.
    """
    name = cfg.model.name
    declared = MODELS.get(name)
    wants_features = declared.inputs == "features"
    if isinstance(data, FeatureDataset):
        if not wants_features:
            raise UserError(
                f"data.features={cfg.data.features} gives feature vectors, but model {name!r} takes images; use a "
                "feature model (eszsl, ale, devise, sje) or unset data.features"
            )
        assert data.source is not None
        return model, data.source, replace(spec, hflip=False)
    if wants_features:
        raise UserError(f"model {name!r} trains on feature vectors; set data.features=res101 (the xlsa17 features)")
    cache_dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else None
    if not cfg.model.freeze_backbone:
        return model, open_images(data, spec, cache_dir), spec
    if not cfg.data.feature_cache:
        log.info("feature cache off (data.feature_cache=false): the frozen backbone runs at every step")
        return model, open_images(data, spec, cache_dir), spec
    check_cacheable(model, declared)
    if state is not None and "model" in state:  # (a deepspeed checkpoint is loaded later, by its engine)
        model.load_state_dict(state["model"])
    source = cached_features(model, cfg, data, spec, device)
    return HeadOnly(model), source, spec


def check_cacheable(model: nn.Module, declared: ModelSpec) -> None:
    """Raise ``UserError`` unless ``declared``'s family has a backbone/head split and ``model`` keeps the default
    training step (a model that needs the images in its step, like DUET, cannot train from cached features)."""
    if not declared.backbone_split:
        raise UserError(
            f"model {declared.name!r} cannot train from the feature cache (its family declares no backbone/head "
            "split); set data.feature_cache=false to train it with a frozen backbone from the images"
        )
    if type(model).training_loss is not ZslModel.training_loss:
        raise UserError(
            f"model {declared.name!r} has its own training step, which needs the images; "
            "set data.feature_cache=false to train it with a frozen backbone from the images"
        )


def cached_features(
    model: ZslModel, cfg: ExperimentConfig, data: ZslDataset, spec: TransformSpec, device: torch.device
) -> FeatureSource:
    """The feature-cache entry of ``model``'s backbone on every image of ``data`` under ``spec``: opened, or
    extracted (once across processes) and then opened."""
    flip_rows = trainable_rows(data) if spec.hflip else None
    describe = describe_backbone(model, cfg.model.name, cfg.model.options, data, spec)
    key = cache_key(describe)
    batch = extraction_batch(cfg.eval.batch_for(device), spec.hflip)
    store = FeatureStore(cfg.data.feature_cache_dir)
    if spec.hflip:
        log.info("feature cache: train.hflip is on, so the flipped images' features are cached too")
    cache_dir = Path(cfg.data.cache_dir) if cfg.data.cache_dir else None

    def build(writer: Writer) -> dict[str, Any]:
        log.info("feature cache: extracting %s (%d images) into %s", key, len(data.image_paths), store.root)
        images = open_images(data, spec, cache_dir)
        return extract(model, images, spec, writer, batch_size=batch, device=device, flip_rows=flip_rows)

    source, built = store.open(key, describe, build, len(data.image_paths))
    if not built:
        log.info("feature cache: reusing %s from %s", key, store.root)
    return source


def describe_backbone(
    model: nn.Module, name: str, options: dict[str, Any], data: ZslDataset, spec: TransformSpec
) -> dict[str, Any]:
    """Everything a cached entry depends on (JSON), hashed into its key and kept in its ``meta.json``."""
    head_only = set(MODELS.get(name).head_options)
    return {
        "version": KEY_VERSION,
        "model": name,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "options": {k: v for k, v in sorted(options.items()) if k not in head_only},
        "weights": tensors_digest(backbone_state(model)),
        "dataset": data.name,
        "root": str(data.root),
        "images": images_digest(data.image_paths) if data.image_paths else "",
        "transform": {
            "resize": spec.resize,
            "crop": spec.crop,
            "resize_mode": spec.resize_mode,
            "interpolation": spec.interpolation,
            "norm": spec.norm,
        },
        "hflip": spec.hflip,
        "hflip_rows": rows_digest(trainable_rows(data)) if spec.hflip else None,
    }


def backbone_state(model: ZslModel) -> dict[str, torch.Tensor]:
    """The tensors the backbone's outputs depend on (:meth:`ZslModel.backbone_state`)."""
    return model.backbone_state()


def rows_digest(rows: np.ndarray) -> str:
    """16 hex digits of sha256 over the int64 bytes of ``rows`` [M]."""
    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def extraction_batch(eval_batch: int, hflip: bool) -> int:
    """Images read per extraction step: ``eval_batch`` (the trial's evaluation batch on its device), halved when
    the flipped views join the same forward, so that one forward holds at most ``eval_batch`` images."""
    return max(1, eval_batch // 2) if hflip else eval_batch


def cache_key(describe: dict[str, Any]) -> str:
    """``<model>-<dataset>-<16 hex digits of sha256 over describe>``: the entry's directory name."""
    digest = hashlib.sha256(json.dumps(describe, sort_keys=True, default=str).encode()).hexdigest()
    return f"{describe['model']}-{describe['dataset']}-{digest[:16]}"


def trainable_rows(data: ZslDataset) -> np.ndarray:
    """The images a trial of any stage can train on, so the only ones it flips: all but the test images (test_seen
    and test_unseen, which no stage trains on; :func:`~zsl_bench.data.protocol.assert_honest`) — int64 [M]."""
    test = np.union1d(data.split.test_seen_loc, data.split.test_unseen_loc)
    return np.setdiff1d(np.arange(len(data.image_paths), dtype=np.int64), test)


@torch.no_grad()
def extract(
    model: nn.Module,
    images: ImageSource,
    spec: TransformSpec,
    writer: Writer,
    *,
    batch_size: int,
    device: torch.device,
    flip_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """Run ``model.forward_backbone`` on every image of ``images`` (in order, eval mode, no flip) — and, when
    ``spec.hflip``, on the flipped images ``flip_rows`` (int64 [M] ascending; None: all) — into ``writer``; returns
    ``names``, ``single``, ``hflip``, ``device``.

    Each image is read (decoded) once: a batch of B images and its k flipped ones run as one forward [B + k, ...].
    """
    was_training = model.training
    model.eval()
    model.to(device)
    flippable = np.zeros(len(images), dtype=bool)
    if spec.hflip:
        flippable[np.arange(len(images)) if flip_rows is None else flip_rows] = True
        if flip_rows is not None:
            writer.flip_only(flip_rows)
    names: list[str] = []
    single = False
    try:
        for idx, pixels in batches(images, np.arange(len(images)), batch_size):
            x = augment(pixels, spec, train=False)  # [B, 3, S, S]; normalising commutes with the flip
            flip = torch.from_numpy(flippable[idx])
            both = torch.cat([x, x[flip].flip(-1)]) if flip.any() else x
            out = model.forward_backbone(both.to(device))  # [B + k, ...]
            if isinstance(out, torch.Tensor):
                single, out = True, {SINGLE: out}
            if not isinstance(out, dict) or not all(isinstance(t, torch.Tensor) for t in out.values()):
                raise TypeError(f"forward_backbone must return a tensor or a dict of tensors, not {type(out)}")
            names = sorted(out)
            for name in names:
                writer.add(name, out[name][: len(idx)])
                if flip.any():
                    writer.add(name + FLIP_SUFFIX, out[name][len(idx) :])
    finally:
        model.train(was_training)
    return {"names": names, "single": single, "hflip": spec.hflip, "device": str(device)}
