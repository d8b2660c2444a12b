"""Pretrained weights for the transformers backbones of the baselines: hub ids, ``save_pretrained`` directories
and state-dict files, all through ``from_pretrained`` (which converts ``…ForImageClassification`` prefixes and older
key names); failures are one-line ``UserError``s. Callers import transformers (and pass its classes) only when
weights are asked for: random init of a ResNet needs no transformers (:mod:`zsl_bench.models.resnet`).

Weights from a local file or directory are read once per process while its files are unchanged
(:func:`zsl_bench.memo.path_stamp`): the process keeps that one backbone and hands every trial its own copy, so a
sweep's trials do not convert and load the same file again (for one extra copy of the backbone in memory).
"""

from __future__ import annotations

import copy
import inspect
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zsl_bench.errors import UserError
from zsl_bench.memo import KeepLast, path_stamp

log = logging.getLogger(__name__)

HUB_IDS = {
    "resnet101": "microsoft/resnet-101",
    "vit_b16": "google/vit-base-patch16-224",
    "deit_b16": "facebook/deit-base-distilled-patch16-224",
}
RANDOM_INIT = ("none", "random", "scratch")  # ``pretrained`` values that ask for random init explicitly
_STATE_FILES = (".safetensors", ".bin", ".pt", ".pth")
_LOADED: KeepLast[nn.Module] = KeepLast()  # the last backbone read from local files, by what it was read from


def is_random_init(pretrained: str | Path | None) -> bool:
    """Whether ``pretrained`` asks for no weights (``None`` or one of :data:`RANDOM_INIT`)."""
    return pretrained is None or str(pretrained).strip().lower() in RANDOM_INIT


def load_backbone_net(model_cls: type, config: Any, pretrained: str | Path | None, model_name: str) -> nn.Module:
    """A transformers ``model_cls`` (``ResNetModel``, ``ViTModel``, ``DeiTModel``) with weights from ``pretrained``.

    ``None`` or one of :data:`RANDOM_INIT`: random init from ``config``. An existing directory: ``from_pretrained``
    (its own config). An existing state-dict file: ``config`` plus those weights. Anything else is taken as a hub id
    (the network, or the local Hugging Face cache when ``HF_HUB_OFFLINE=1``). All three go through
    ``from_pretrained``, so the ``…ForImageClassification`` prefix and older key names are converted. Failures,
    and weights that leave part of the backbone uninitialised, are one-line ``UserError``s.
    """
    kwargs = {"add_pooling_layer": False} if _takes(model_cls, "add_pooling_layer") else {}  # ViT/DeiT: no pooler
    if is_random_init(pretrained):
        log.info("%s: random init (pretrained=%s)", model_name, pretrained)
        return model_cls(config, **kwargs)
    path = Path(pretrained).expanduser()
    how = (
        "provide them with model.options.pretrained=/path/to/dir (a transformers save_pretrained directory, e.g. "
        f"`hf download {_hub_hint(model_cls)} --local-dir DIR` on a machine online) or a "
        "state-dict file, use a hub id when online, or ask for random init with model.options.pretrained=none"
    )
    if path.is_file() or path.is_dir():
        shape = config.to_json_string(use_diff=False)
        key = (model_cls, shape, str(path.resolve()), path_stamp(path), *sorted(kwargs.items()))
        net = _LOADED.get(key, lambda: _load_local(model_cls, config, path, kwargs, model_name=model_name, how=how))
        return copy.deepcopy(net)
    if str(pretrained).startswith(("/", ".", "~")):  # a path, and hub ids never look so
        raise UserError(f"cannot load pretrained weights for {model_name}: no such directory or file {path}; {how}")
    where = f"hub id {pretrained!r}"
    return _from_pretrained(model_cls, str(pretrained), kwargs, model_name=model_name, where=where, how=how)


def _load_local(
    model_cls: type, config: Any, path: Path, kwargs: dict[str, Any], *, model_name: str, how: str
) -> nn.Module:
    """``model_cls`` with the weights of the state-dict file or ``save_pretrained`` directory ``path``."""
    if path.is_dir():
        where = f"directory {path}"
        return _from_pretrained(model_cls, str(path), kwargs, model_name=model_name, where=where, how=how)
    with tempfile.TemporaryDirectory(prefix="zsl-bench-weights-") as tmp:
        _state_file_as_directory(path, config, Path(tmp), model_name)
        return _from_pretrained(model_cls, tmp, kwargs, model_name=model_name, where=f"file {path}", how=how)


def _from_pretrained(
    model_cls: type, source: str, kwargs: dict[str, Any], *, model_name: str, where: str, how: str
) -> nn.Module:
    """``model_cls.from_pretrained(source)`` in float32; every backbone weight must come from ``source``."""
    try:
        net, info = model_cls.from_pretrained(source, dtype=torch.float32, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:  # no network/cache, bad repo id, size mismatch
        reason = _first_line(exc)
    else:
        missing = sorted(info["missing_keys"])
        if not missing:
            return net
        reason = f"{len(missing)} backbone weights missing there, e.g. {missing[0]}"
    raise UserError(f"cannot load pretrained weights for {model_name} from {where} ({reason}); {how}")


def _state_file_as_directory(path: Path, config: Any, out: Path, model_name: str) -> None:
    """Write ``config`` and the state dict of ``path`` (unwrapped from ``{"state_dict": …}``) as a
    ``save_pretrained``-style directory ``out``."""
    if path.suffix not in _STATE_FILES:
        raise UserError(f"{model_name}: pretrained file {path} is not a state dict ({', '.join(_STATE_FILES)})")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: whatever the loader raises
        raise UserError(f"{model_name}: cannot read pretrained file {path} ({_first_line(exc)})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{model_name}: pretrained file {path} does not hold a state dict of tensors")
    from safetensors.torch import save_file

    config.save_pretrained(out)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))


def _takes(model_cls: type, name: str) -> bool:
    return name in inspect.signature(model_cls.__init__).parameters


_HUB_OF_CLASS = {"ResNetModel": "resnet101", "ViTModel": "vit_b16", "DeiTModel": "deit_b16"}


def _hub_hint(model_cls: type) -> str:
    """The hub id of the full-size weights of a transformers backbone class (for the offline hint)."""
    return HUB_IDS.get(_HUB_OF_CLASS.get(model_cls.__name__, ""), "ORG/NAME")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
