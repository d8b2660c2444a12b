"""Typed experiment config: pydantic models, YAML loading, dotted ``--set a.b=value`` overrides, strict keys.

An experiment config has six sections (``model``, ``data``, ``train``, ``optim``, ``eval``, ``meta``). Unknown
keys are errors that name the closest valid key. A config is built from a *base* — a packaged preset name
(``zsl_bench/presets/<name>.yaml``) or a path to a YAML file — plus overrides.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from zsl_bench import safe_yaml
from zsl_bench.errors import UserError
from zsl_bench.registry import close_matches

PRESET_DIR = Path(__file__).parent / "presets"


MAX_BATCH = 2**20  # images per step: far above any GPU's memory, far below an overflow
MAX_EPOCHS = 100_000


class _Strict(BaseModel):
    # inf and nan pass gt=0 / ge=0 (optim.lr=.inf trains on NaN losses): every float of the schema is finite
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelConfig(_Strict):
    name: str = "resnet_test"
    options: dict[str, Any] = Field(default_factory=dict)  # the model's typed options (checked when a config loads)
    freeze_backbone: bool = False  # train only the head (backbone: no gradients, eval-mode BatchNorm)


class DataConfig(_Strict):
    name: str = "synth"
    root: str | None = None  # dataset directory; default data/<name>
    image_size: int | None = Field(None, ge=8)  # None: the model's declared pipeline (ZeroMamba 448, tiny ones 64)
    cache_dir: str | None = None  # memory-mapped cache of preprocessed images (real datasets); None: in memory
    holdout_frac: float = Field(0.2, gt=0.0, lt=1.0)  # train-class images held out as val-seen (stage search)
    features: Literal["res101"] | None = None  # train on the dataset's precomputed features (xlsa17 res101.mat)
    feature_cache: bool = True  # model.freeze_backbone: extract the backbone outputs once, every trial reuses them
    feature_cache_dir: str | None = None  # None: ~/.cache/zsl-bench/features; made absolute (Ray trials run elsewhere)

    @field_validator("feature_cache_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return str(Path(value).expanduser().resolve()) if value else None


class TrainConfig(_Strict):
    epochs: int = Field(8, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(64, ge=1, le=MAX_BATCH)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(None, ge=1)  # torch CPU threads; None: leave as the process has it
    hflip: bool = True  # random horizontal flip augmentation
    checkpoint: bool = True  # checkpoint/latest.pt every epoch (+ best.pt): resume, retries
    keep_checkpoints: int = Field(0, ge=0)  # also keep the newest N per-epoch files (PBT exploits them)
    grad_accum: int = Field(1, ge=1)  # optimiser step every N batches (the loss is divided by N)
    grad_clip: float | None = Field(None, gt=0.0)  # clip the global gradient norm before each step; None: off
    # Several worker processes (zsl_bench.engine.distributed): ddp = torch DistributedDataParallel, deepspeed = ZeRO
    # (the `deepspeed` extra). batch_size is per worker: an optimiser step sees batch_size x grad_accum x num_workers.
    strategy: Literal["single", "ddp", "deepspeed"] = "single"
    num_workers: int = Field(1, ge=1)  # worker processes (one GPU each on CUDA); `zsl-bench train` launches them
    zero_stage: int = Field(2, ge=0, le=3)  # deepspeed: 1 shards optimizer states, 2 + gradients, 3 + parameters
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # ddp/deepspeed: autocast dtype (fp32 master weights)
    offload_optimizer: bool = False  # deepspeed: optimizer states and step on the CPU (ZeRO 1-3)
    deepspeed_config: str | None = None  # deepspeed: a JSON file instead of the generated one (cluster/README.md)

    @field_validator("deepspeed_config")
    @classmethod
    def _absolute_json(cls, value: str | None) -> str | None:  # workers may run in another directory
        return str(Path(value).expanduser().resolve()) if value else None


class OptimConfig(_Strict):
    name: Literal["adamw", "adam", "sgd"] = "adamw"  # adam: L2 weight decay in the gradient; adamw: decoupled
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd only
    backbone_lr: float | None = Field(None, gt=0.0)  # the model's "backbone" group; None: lr
    head_lr: float | None = Field(None, gt=0.0)  # the model's "head" group; None: lr
    group_lr: dict[str, float] = Field(default_factory=dict)  # lr per named group of the model (wins over the above)
    # Learning-rate schedule, stepped once per epoch: multistep (×lr_decay at each milestone epoch), step
    # (×lr_decay every step_size epochs), cosine (to 0 at the last epoch); warmup_epochs ramps linearly first.
    schedule: Literal["none", "multistep", "step", "cosine"] = "none"
    milestones: list[int] = Field(default_factory=list)
    lr_decay: float = Field(0.1, gt=0.0, le=1.0)
    step_size: int = Field(10, ge=1)
    warmup_epochs: int = Field(0, ge=0)
    reset_state_each_epoch: bool = False  # forget momentum/Adam moments at every epoch (DUET's official recipe)


EVAL_BATCH_CPU = 64  # eval.batch_size auto on CPU: larger batches fall out of cache and cost more per image
EVAL_BATCH_ACCELERATOR = 256  # eval.batch_size auto on CUDA (and any other accelerator)
_EVAL_BATCH = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_BATCH)])


class EvalConfig(_Strict):
    """How every epoch is evaluated.

    ``batch_size`` is the number of images per no-grad forward of an evaluation; it changes no metric beyond float
    rounding. Unset (``null``, or ``auto`` in a config: the default) it is chosen for the trial's device by
    :meth:`batch_for`: :data:`EVAL_BATCH_CPU` (64) on CPU, :data:`EVAL_BATCH_ACCELERATOR` (256) on CUDA; a number
    always wins."""

    score_space: Literal["softmax", "raw"] = "softmax"  # where calibrated stacking subtracts gamma
    gamma: float | None = None  # fixed gamma; None: chosen on validation at every evaluation
    batch_size: int | None = None  # images per evaluation forward; None (or "auto"): 64 on CPU, 256 on CUDA
    # CZSL, U and S as per-class means (the xlsa17 standard) or overall accuracies (the official DUET --all)
    accuracy: Literal["per_class", "per_sample"] = "per_class"

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> int | None:
        if value is None or value == "auto":
            return None
        try:
            return _EVAL_BATCH.validate_python(value)
        except ValidationError as exc:
            raise ValueError(f"{exc.errors()[0]['msg']} (or 'auto')") from None

    def batch_for(self, device: Any) -> int:
        """The evaluation batch size on ``device`` (a ``torch.device`` or its name, e.g. ``"cuda:0"``)."""
        if self.batch_size is not None:
            return self.batch_size
        kind = getattr(device, "type", str(device).split(":")[0])
        return EVAL_BATCH_CPU if kind == "cpu" else EVAL_BATCH_ACCELERATOR


class MetaConfig(_Strict):
    git_sha: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    sweep: str | None = None
    trial_id: str | None = None
    stage: Literal["search", "final"] = "search"
    parent: str | None = None  # stage final: the search trial whose configuration this run retrains
    # which distribution (and version) provided the model and the dataset: {"model": {name, distribution, version}}
    providers: dict[str, dict[str, str | None]] = Field(default_factory=dict)
    sweep_settings: dict[str, Any] = Field(default_factory=dict)  # the searcher, scheduler and their options


class ExperimentConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    meta: MetaConfig = Field(default_factory=MetaConfig)


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """The YAML document in ``path``, bounded by :mod:`zsl_bench.safe_yaml` (size, depth, alias expansion,
    UTF-8); a missing, malformed or refused file is a one-line ``UserError``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path} (check the path)")
    return safe_yaml.load_file(path, what)


def valid_keys(model: type[BaseModel] = ExperimentConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, e.g. ``train.epochs`` (free-form dicts end the path)."""
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys.extend(valid_keys(sub, key + "."))
        else:
            keys.append(key)
    return keys


def check_key(key: str, source: str) -> None:
    """Raise ``UserError`` unless ``key`` is a settable dotted key (free dicts such as model.options.* pass)."""
    keys = valid_keys()
    if key in keys or any(key.startswith(k + ".") and _is_free_dict(k) for k in keys):
        return
    hint = close_matches(key, keys, n=1)
    tail = f"; did you mean {hint[0]!r}?" if hint else "; see `zsl-bench config keys`"
    raise UserError(f"unknown config key {key!r} in {source}{tail}")


def _is_free_dict(key: str) -> bool:
    node: Any = ExperimentConfig
    for part in key.split("."):
        node = node.model_fields[part].annotation
    return getattr(node, "__origin__", None) is dict


def parse_override(text: str) -> tuple[str, Any]:
    """``'optim.lr=1e-3'`` → ``('optim.lr', 0.001)``; the value is parsed as YAML (safe)."""
    if "=" not in text:
        raise UserError(f"bad --set {text!r}: expected key=value, e.g. --set train.epochs=5")
    key, raw = text.split("=", 1)
    try:
        value = safe_yaml.load_text(raw, f"--set {key.strip()}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``key='a.b'``, creating dicts on the way."""
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value


def resolve_base(base: str | Path) -> Path:
    """A preset name (``quickstart``) or a YAML path → the file to read."""
    path = Path(base)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return path
    preset = PRESET_DIR / f"{base}.yaml"
    if preset.is_file():
        return preset
    names = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    hint = close_matches(str(base), names)
    tail = f"did you mean {', '.join(map(repr, hint))}?" if hint else f"presets: {', '.join(names)}"
    raise UserError(f"unknown config preset {str(base)!r} (not a file either); {tail}")


def build_config(
    base: str | Path | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    source: str = "config",
) -> ExperimentConfig:
    """Validate ``base`` (preset name, YAML path or dict) with dotted ``overrides`` applied on top."""
    if base is None:
        tree: dict[str, Any] = {}
    elif isinstance(base, dict):
        tree = copy.deepcopy(base)
    else:
        path = resolve_base(base)
        source = str(path)
        tree = read_yaml(path, "config file") or {}
        if not isinstance(tree, dict):
            raise UserError(f"{path} must hold a mapping of config sections, not {type(tree).__name__}")
    for key, value in (overrides or {}).items():
        check_key(key, "overrides")
        set_dotted(tree, key, value)
    return validate(tree, source)


def validate(tree: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Pydantic validation with the first problem turned into one readable line."""
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            check_key(key, source)  # raises with the closest valid key
        raise UserError(f"invalid value for {key!r} in {source}: {err['msg']} (got {err.get('input')!r})") from None


def to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain-dict form (for YAML and for Ray's param space)."""
    return config.model_dump(mode="json")
