"""Issue 19's bad-input table: every command and every way its input can be wrong. Each case must end in exit code
2, one ``zsl-bench: error:`` line, no traceback and no file left (``fault_harness.py`` checks it).

Paths in argv are relative to the case's own folder; ``{synth}`` is a valid synthetic dataset outside it.
``expect`` is a piece of the line that names what (or where) was wrong.
"""

from __future__ import annotations

from fault_harness import Case, case
from fault_setups import BOMB, a_file, planted_checkpoint

# -------------------------------------------------------------------------------------------- malformed YAML

BAD_YAML: dict[str, bytes] = {
    "syntax": b"model: {name: resnet_test\n",
    "tab-indent": b"model:\n\tname: resnet_test\n",
    "bad-indent": b"model:\n  name: a\n options: {}\n",
    "undefined-alias": b"model: *nowhere\n",
    "two-documents": b"model: {}\n---\ntrain: {}\n",
    "nul-byte": b"model: {name: \x00}\n",
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
    "latin-1": "model:\n  name: caf\xe9\n".encode("latin-1"),
    "utf-16": "model: {}\n".encode("utf-16"),
    "deep-nesting": b"model: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
    "deep-mapping": b"a: " + b"{b: " * 200 + b"1" + b"}" * 200 + b"\n",
    "alias-bomb": f"meta:\n  versions: {BOMB}\n".encode(),
    "too-large": b"# filler\n" * 300_000,
    "list": b"- model\n- train\n",
    "scalar": b"42\n",
    "string": b"just some text\n",
}
SPACE_ONLY = {"alias-bomb": f"base: quickstart\nset:\n  model.options.x: {BOMB}\nspace: {{}}\n".encode()}


def yaml_cases() -> list[Case]:
    """Every malformed YAML as a --config file of ``train`` and as a --space file of ``sweep``."""
    out = []
    for kind, data in BAD_YAML.items():
        train = ("train", "--model", "resnet_test", "--dataset", "synth", "--config", "bad.yaml")
        out.append(case(f"train-config-{kind}", *train, files={"bad.yaml": data}, expect="bad.yaml"))
        space = SPACE_ONLY.get(kind, data)
        out.append(case(f"sweep-space-{kind}", "sweep", "--space", "bad.yaml", files={"bad.yaml": space}))
    return out


# ------------------------------------------------------------------------------------------------------- argv

ARGV = [
    case("argv-empty"),
    case("argv-unknown-command", "frobnicate", expect="invalid choice"),
    case("argv-data-no-subcommand", "data"),
    case("argv-unknown-option", "models", "list", "--frob", expect="--frob"),
    case("argv-train-no-dataset", "train", "--model", "resnet_test", expect="--dataset"),
    case("argv-synth-seed-not-int", "data", "synth", "--out", "d", "--seed", "abc", expect="--seed"),
    case("argv-sweep-num-samples-not-int", "sweep", "--space", "quickstart", "--num-samples", "many"),
    case("argv-leaderboard-format", "leaderboard", "--format", "xml", expect="xml"),
    case("argv-models-list-two-patterns", "models", "list", "a*", "b*"),
    case("argv-config-keys-extra", "config", "keys", "train"),
    case("argv-data-list-extra", "data", "list", "cub"),
    case("argv-cache-rm-nothing", "cache", "rm", "--dir", "cache", expect="--all"),
    case("argv-cache-rm-both", "cache", "rm", "abc", "--all", "--dir", "cache", expect="--all"),
    case("argv-spaces-show-none", "spaces", "show"),
    case("argv-cluster-slurm-nodes", "cluster", "slurm", "--space", "quickstart", "--nodes", "x"),
    case("plugin-missing-value", "--plugin", expect="--plugin"),
    case("plugin-option-as-value", "--plugin", "-v", "models", "list", expect="--plugin"),
    case("plugin-not-found", "--plugin", "no_such_plugin_mod", "models", "list", expect="no_such_plugin_mod"),
    case("plugin-empty-name", "--plugin=", "models", "list"),
    case("plugin-relative-name", "--plugin", ".rel", "models", "list"),
    case("plugin-env-not-found", "--plugin", "nope.deeper", "config", "keys", expect="nope.deeper"),
]

# ------------------------------------------------------------------------------------------- train: values

TRAIN = ("train", "--model", "resnet_test", "--dataset", "synth", "--data-root", "{synth}", "--set", "train.epochs=1")
SETS = {
    "no-equals": ("train.epochs", "train.epochs"),
    "empty-key": ("=5", "''"),
    "unknown-key": ("train.epochz=1", "train.epochs"),
    "unknown-section": ("trian.epochs=1", "trian"),
    "section-itself": ("train=5", "train"),
    "epochs-text": ("train.epochs=abc", "train.epochs"),
    "epochs-zero": ("train.epochs=0", "train.epochs"),
    "epochs-huge": ("train.epochs=1.0e12", "train.epochs"),
    "epochs-fraction": ("train.epochs=1.5", "train.epochs"),
    "batch-size-1e12": ("train.batch_size=1e12", "train.batch_size"),
    "batch-size-1.0e12": ("train.batch_size=1.0e12", "train.batch_size"),
    "batch-size-float": ("train.batch_size=1.0e+12", "train.batch_size"),
    "eval-batch-size-float": ("eval.batch_size=1.0e+12", "eval.batch_size"),
    "batch-size-negative": ("train.batch_size=-4", "train.batch_size"),
    "lr-inf": ("optim.lr=.inf", "optim.lr"),
    "lr-1e999": ("optim.lr=1.0e999", "optim.lr"),
    "lr-float-overflow": ("optim.lr=1.0e+999", "optim.lr"),
    "lr-nan": ("optim.lr=.nan", "optim.lr"),
    "lr-zero": ("optim.lr=0", "optim.lr"),
    "lr-list": ("optim.lr=[1, 2]", "optim.lr"),
    "weight-decay-inf": ("optim.weight_decay=.inf", "optim.weight_decay"),
    "backbone-lr-inf": ("optim.backbone_lr=.inf", "optim.backbone_lr"),
    "group-lr-inf": ("optim.group_lr={head: .inf}", "optim.group_lr"),
    "momentum-nan": ("optim.momentum=.nan", "optim.momentum"),
    "lr-decay-nan": ("optim.lr_decay=.nan", "optim.lr_decay"),
    "grad-clip-inf": ("train.grad_clip=.inf", "train.grad_clip"),
    "holdout-nan": ("data.holdout_frac=.nan", "data.holdout_frac"),
    "gamma-inf": ("eval.gamma=.inf", "eval.gamma"),
    "gamma-nan": ("eval.gamma=.nan", "eval.gamma"),
    "optimizer-name": ("optim.name=adamax", "optim.name"),
    "device": ("train.device=tpu", "train.device"),
    "strategy": ("train.strategy=horovod", "train.strategy"),
    "zero-stage": ("train.zero_stage=4", "train.zero_stage"),
    "image-size-tiny": ("data.image_size=2", "data.image_size"),
    "features": ("data.features=res50", "data.features"),
    "milestones-text": ("optim.milestones=soon", "optim.milestones"),
    "options-not-mapping": ("model.options=5", "model.options"),
    "option-typo": ("model.options.widht=8", "widht"),
    "option-type": ("model.options.width=wide", "width"),
    "option-bomb": (f"model.options.x={BOMB}", "model.options.x"),
}


def set_cases() -> list[Case]:
    """``train --set`` with every kind of bad key and value."""
    return [case(f"train-set-{kind}", *TRAIN, "--set", text, expect=need) for kind, (text, need) in SETS.items()]


CONFIGS = {
    "unknown-section": ("trian: {epochs: 1}\n", "trian"),
    "unknown-key": ("train: {epochz: 1}\n", "train.epochs"),
    "unknown-nested": ("optim: {lr: 0.1, schedule_options: {x: 1}}\n", "optim.schedule_options"),
    "section-scalar": ("optim: 5\n", "optim"),
    "section-list": ("optim: [adamw]\n", "optim"),
    "wrong-type": ("train: {batch_size: abc}\n", "train.batch_size"),
    "bool-as-number": ("train: {batch_size: yes please}\n", "train.batch_size"),
    "inf": ("optim: {lr: .inf}\n", "optim.lr"),
    "batch-size-huge": ("train: {batch_size: 1.0e12}\n", "train.batch_size"),
    "option-typo": ("model: {name: resnet_test, options: {widht: 8}}\n", "widht"),
}


def config_cases() -> list[Case]:
    """``train --config FILE`` whose YAML is well-formed but wrong for the schema, and missing files."""
    out = [
        case(f"train-config-{kind}", *TRAIN, "--config", "c.yaml", files={"c.yaml": text}, expect=need)
        for kind, (text, need) in CONFIGS.items()
    ]
    out += [
        case("train-config-missing", *TRAIN, "--config", "none.yaml", expect="none.yaml"),
        case("train-config-preset-typo", *TRAIN, "--config", "quickstrat", expect="quickstart"),
        case("train-config-a-folder", *TRAIN, "--config", "cfgdir", files={"cfgdir": None}, expect="cfgdir"),
        case("train-unknown-model", "train", "--model", "resnet_tset", "--dataset", "synth", expect="resnet_test"),
        case("train-unknown-dataset", "train", "--model", "resnet_test", "--dataset", "synht", expect="synth"),
        case("train-out-is-a-file", *TRAIN, "--out", "out.txt", setup=a_file("out.txt"), expect="out.txt"),
        case("train-out-under-a-file", *TRAIN, "--out", "f/run", setup=a_file("f"), expect="f"),
        case("train-foreign-pickle", *TRAIN, "--out", "run", setup=planted_checkpoint, expect="latest.pt"),
    ]
    return out
