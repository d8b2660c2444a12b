"""The rest of issue 19's bad-input table: dataset folders, ``data fetch``, space files and ``sweep`` (every case
fails before Ray starts), ``spaces``, ``leaderboard``, ``report``, ``cache`` and ``cluster``."""

from __future__ import annotations

from fault_harness import Case, case
from fault_setups import (
    a_file,
    a_folder,
    cluster_record,
    damaged,
    mat_without,
    runs,
    sweep_with_runs,
    trained_run,
)

# ---------------------------------------------------------------------------------------- dataset folders

INSPECT = ("data", "inspect", "--dataset", "synth", "--root", "ds")
TRAIN_ON = ("train", "--model", "resnet_test", "--dataset", "synth", "--set", "train.epochs=1", "--data-root", "ds")
DATA_DAMAGE = {
    "missing-folder": (None, a_folder("other"), "ds"),
    "root-is-a-file": (None, a_file("ds"), "ds"),
    "no-att-splits": (None, damaged("att_splits.mat", None), "att_splits.mat"),
    "att-splits-garbage": (None, damaged("att_splits.mat", b"\x00garbage" * 100), "att_splits.mat"),
    "att-splits-empty": (None, damaged("att_splits.mat", b""), "att_splits.mat"),
    "att-splits-text": (None, damaged("att_splits.mat", b"att = [1, 2]\n"), "att_splits.mat"),
    "att-splits-no-att": (None, mat_without("att"), "att"),
    "att-splits-no-test-unseen": (None, mat_without("test_unseen_loc"), "test_unseen_loc"),
    "image-list-garbage": (None, damaged("image_files.txt", b"\xff\xfe\x00junk\n"), "image_files.txt"),
    "image-list-short": (None, damaged("image_files.txt", b"images/a/0.png\n"), "image_files.txt"),
}


def data_cases() -> list[Case]:
    """Damaged dataset folders, met by ``data inspect`` and by ``train`` (which must leave no run directory)."""
    out = []
    for kind, (_, setup, need) in DATA_DAMAGE.items():
        out.append(case(f"inspect-{kind}", *INSPECT, setup=setup, expect=need))
        out.append(case(f"train-data-{kind}", *TRAIN_ON, setup=setup, expect=need))
    wrong = ("data", "inspect", "--dataset", "cub", "--root", "{synth}")
    out += [
        case("inspect-wrong-dataset", *wrong, expect="att_splits.mat"),
        case("train-wrong-dataset", "train", "--model", "resnet_test", "--dataset", "cub", "--data-root", "{synth}"),
        case("inspect-unknown-dataset", "data", "inspect", "--dataset", "cubb", expect="cub"),
        case("inspect-default-root-missing", "data", "inspect", "--dataset", "cub", expect="data/CUB"),
        case("train-images-missing", *TRAIN_ON, setup=damaged("synth_spec.json", b"{}"), expect="images"),
        case("train-features-missing", *TRAIN_ON[:-2], "--data-root", "{synth}", "--set", "data.features=res101"),
        case("synth-out-is-a-file", "data", "synth", "--out", "d", setup=a_file("d"), expect="d"),
        case("synth-out-foreign-folder", "data", "synth", "--out", "d", files={"d/mine.txt": "keep\n"}, expect="d"),
    ]
    return out


FETCH = [
    case("fetch-unknown-target", "data", "fetch", "cubb", expect="cub"),
    case("fetch-synth-is-generated", "data", "fetch", "synth", expect="data synth"),
    case("fetch-mirror-not-a-url", "data", "fetch", "cub", "--root", "c", "--mirror", "notaurl", expect="notaurl"),
    case("fetch-mirror-ftp", "data", "fetch", "cub", "--root", "c", "--mirror", "ftp://h/x", expect="ftp://h/x"),
    case("fetch-mirror-no-host", "data", "fetch", "cub", "--root", "c", "--mirror", "http://", expect="http://"),
    case("fetch-root-is-a-file", "data", "fetch", "cub", "--root", "c", setup=a_file("c"), expect="c"),
    case("fetch-root-under-a-file", "data", "fetch", "xlsa17", "--root", "f/x", setup=a_file("f"), expect="f"),
    case("fetch-sha256-not-hex", "data", "fetch", "cub", "--root", "c", "--sha256", "xyz", expect="xyz"),
    case("fetch-sha256-wrong-file", "data", "fetch", "cub", "--root", "c", "--sha256", "a.tgz=" + "0" * 64),
    case("fetch-manifest-missing", "data", "fetch", "cub", "--root", "c", "--manifest", "m.txt", expect="m.txt"),
    case("fetch-manifest-binary", "data", "fetch", "cub", "--manifest", "m", files={"m": b"\xff\x00"}, expect="m"),
    case("fetch-manifest-malformed", "data", "fetch", "cub", "--manifest", "m", files={"m": "a b c\n"}, expect="m"),
]

# ---------------------------------------------------------------------------------------------- space files

GOOD_SWEEP = "sweep: {num_samples: 2, max_concurrent: 1}\n"
SPACE_HEAD = "base: quickstart\nset: {data.root: {synth}}\n"
LR = "space:\n  optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
SPACES = {
    "top-level-list": ("- base\n", "mapping"),
    "no-space": (SPACE_HEAD + GOOD_SWEEP, "space"),
    "no-base": (GOOD_SWEEP + LR, "base"),
    "unknown-top-key": (SPACE_HEAD + "sweeps: {}\n" + LR, "sweeps"),
    "unknown-sweep-key": (SPACE_HEAD + "sweep: {num_sample: 2}\n" + LR, "num_sample"),
    "unknown-param-key": (SPACE_HEAD + "space:\n  optim.lr: {type: float, lo: 1, high: 2}\n", "lo"),
    "unknown-param-type": (SPACE_HEAD + "space:\n  optim.lr: {type: floot, low: 1, high: 2}\n", "optim.lr"),
    "low-above-high": (SPACE_HEAD + "space:\n  optim.lr: {type: float, low: 2, high: 1}\n", "low"),
    "log-of-zero": (SPACE_HEAD + "space:\n  optim.lr: {type: float, low: 0, high: 1, log: true}\n", "log"),
    "high-1e999": (SPACE_HEAD + "space:\n  optim.lr: {type: float, low: 1.0e-4, high: 1.0e999, log: true}\n", "high"),
    "high-float-overflow": (SPACE_HEAD + "space:\n  optim.lr: {type: float, low: 0.1, high: 1.0e+999}\n", "high"),
    "low-nan": (SPACE_HEAD + "space:\n  optim.lr: {type: float, low: .nan, high: 1}\n", "low"),
    "int-range-empty": (SPACE_HEAD + "space:\n  train.epochs: {type: int, low: 1.5, high: 1.7}\n", "train.epochs"),
    "step-negative": (SPACE_HEAD + "space:\n  optim.lr: {type: float, low: 0.1, high: 1, step: -1}\n", "step"),
    "choice-empty": (SPACE_HEAD + "space:\n  model.name: {type: choice, values: []}\n", "values"),
    "choice-typo": (SPACE_HEAD + "space:\n  model.name: {type: choice, values: [resnet_tset]}\n", "resnet_tset"),
    "choice-bad-value": (SPACE_HEAD + "space:\n  train.epochs: {type: choice, values: [0, 2]}\n", "train.epochs"),
    "space-key-unknown": (SPACE_HEAD + "space:\n  optim.lrr: {type: float, low: 0.1, high: 1}\n", "optim.lr"),
    "space-range-outside": (SPACE_HEAD + "space:\n  optim.lr: {type: float, low: -1, high: 1}\n", "optim.lr"),
    "num-samples-1e30": (SPACE_HEAD + "sweep: {num_samples: 1e30}\n" + LR, "num_samples"),
    "num-samples-1.0e30": (SPACE_HEAD + "sweep: {num_samples: 1.0e30}\n" + LR, "num_samples"),
    "num-samples-float": (SPACE_HEAD + "sweep: {num_samples: 1.0e+30}\n" + LR, "num_samples"),
    "num-samples-zero": (SPACE_HEAD + "sweep: {num_samples: 0}\n" + LR, "num_samples"),
    "max-concurrent-zero": (SPACE_HEAD + "sweep: {max_concurrent: 0}\n" + LR, "max_concurrent"),
    "unknown-searcher": (SPACE_HEAD + "sweep: {searcher: optuan}\n" + LR, "optuna"),
    "unknown-scheduler": (SPACE_HEAD + "sweep: {scheduler: ashaa}\n" + LR, "asha"),
    "searcher-option-typo": (SPACE_HEAD + "sweep: {searcher_options: {samplr: tpe}}\n" + LR, "samplr"),
    "scheduler-option-type": (SPACE_HEAD + "sweep: {scheduler_options: {grace_period: soon}}\n" + LR, "grace"),
    "moved-knob": (SPACE_HEAD + "sweep: {grace_period: 2}\n" + LR, "grace_period"),
    "resources-zero-cpu": (SPACE_HEAD + "sweep: {resources_per_trial: {cpu: 0}}\n" + LR, "cpu"),
    "resources-too-many-cpus": (SPACE_HEAD + "sweep: {resources_per_trial: {cpu: 100000}}\n" + LR, "100000"),
    "resources-too-many-gpus": (SPACE_HEAD + "sweep: {resources_per_trial: {gpu: 1000}}\n" + LR, "1000 GPU"),
    "resources-gpu-inf": (SPACE_HEAD + "sweep: {resources_per_trial: {gpu: .inf}}\n" + LR, "gpu"),
    "name-escapes": (SPACE_HEAD + "sweep: {name: ../../X}\n" + LR, "../../X"),
    "set-unknown-key": ("base: quickstart\nset: {train.epochz: 2}\n" + LR, "s.yaml"),
    "set-bad-value": ("base: quickstart\nset: {train.epochs: 0}\n" + LR, "s.yaml"),
    "set-inf": ("base: quickstart\nset: {optim.weight_decay: .inf}\n" + LR, "s.yaml"),
    "base-unknown-preset": ("base: quickstrat\n" + LR, "quickstart"),
    "base-missing-file": ("base: nowhere.yaml\n" + LR, "nowhere.yaml"),
    "base-malformed": ("base: b.yaml\n" + LR, "b.yaml"),
    "data-missing": ("base: quickstart\nset: {data.root: nowhere}\n" + LR, "nowhere"),
}


SLURM = ("cluster", "slurm", "--space", "s.yaml", "--dry-run", "--cpus-per-node")


def space_cases() -> list[Case]:
    """``sweep --space s.yaml`` with a wrong space file; each must fail before Ray starts."""
    out = []
    for kind, (text, need) in SPACES.items():
        files: dict[str, str | bytes | None] = {"s.yaml": text, "b.yaml": "train: {epochs: [\n"}
        out.append(case(f"sweep-{kind}", "sweep", "--space", "s.yaml", "--results", "res", files=files, expect=need))
    good = {"s.yaml": SPACE_HEAD + GOOD_SWEEP + LR}
    sweep = ("sweep", "--space", "s.yaml", "--results", "res")
    out += [
        case("sweep-option-num-samples-negative", *sweep, "--num-samples", "-5", files=good, expect="--num-samples"),
        case("sweep-option-num-samples-zero", *sweep, "--num-samples", "0", files=good, expect="--num-samples"),
        case("sweep-set-unknown", *sweep, "--set", "train.epochz=1", files=good, expect="train.epochs"),
        case("sweep-option-set-inf", *sweep, "--set", "optim.lr=.inf", files=good, expect="optim.lr"),
        case("sweep-set-no-equals", *sweep, "--set", "optim.lr", files=good, expect="optim.lr"),
        case("sweep-option-name-escapes", *sweep, "--name", "../x", files=good, expect="../x"),
        case("sweep-exists-without-resume", *sweep, "--name", "quick", files=good, setup=sweep_with_runs),
        case("sweep-unknown-shipped", "sweep", "--space", "quickstrat", expect="quickstart"),
        case("sweep-space-is-a-folder", "sweep", "--space", "sp", files={"sp": None}, expect="sp"),
        case("sweep-address-no-token", *sweep, "--address", "127.0.0.1:1", files=good, expect="127.0.0.1:1"),
        case("spaces-show-unknown", "spaces", "show", "quickstrat", expect="quickstart"),
        case("spaces-show-missing-path", "spaces", "show", "no/such.yaml", expect="no/such.yaml"),
        case("slurm-bad-space", *SLURM, "2", files={"s.yaml": "base: [\n"}, expect="s.yaml"),
        case("slurm-bad-time", *SLURM, "2", "--time", "forever", files=good, expect="forever"),
        case("slurm-zero-cpus", *SLURM, "0", files=good, expect="--cpus-per-node"),
    ]
    return out


# --------------------------------------------------------------------------------- leaderboard, report, cache

BOARD = ("leaderboard", "--results", "res")
REPORT = ("report", "--sweep", "sweep", "--results", "res")
BAD_REF: dict[str, str | bytes | None] = {"res": None, "ref/cub.yaml": "rows: [\n"}
REPORTS = [
    case("leaderboard-results-missing", *BOARD, expect="res"),
    case("leaderboard-results-is-a-file", *BOARD, setup=a_file("res"), expect="res"),
    case("leaderboard-out-is-a-folder", *BOARD, "--out", "o", setup=runs(), files={"o": None}, expect="o"),
    case("leaderboard-out-under-a-file", *BOARD, "--out", "f/o.md", setup=a_file("f"), files={"res": None}),
    case("leaderboard-reference-missing", *BOARD, "--reference", "ref", files={"res": None}, expect="ref"),
    case("leaderboard-reference-malformed", *BOARD, "--reference", "ref", "--out", "-", files=BAD_REF, expect="cub"),
    case("report-sweep-missing", "report", "--sweep", "nope", "--results", "res", files={"res": None}, expect="nope"),
    case("report-results-missing", "report", "--sweep", "nope", "--results", "none", expect="none"),
    case("report-no-readable-run", *REPORT, setup=runs(summary="{not json"), expect="sweep"),
    case("report-corrupt-config", *REPORT, setup=runs(config="model: [\n"), expect="sweep"),
    case("report-out-is-a-file", *REPORT, "--out", "o", setup=trained_run, files={"o": "x"}, expect="o"),
    case("report-out-under-a-file", *REPORT, "--out", "o/r", setup=trained_run, files={"o": "x"}, expect="o"),
    case("leaderboard-out-is-a-folder-of-runs", *BOARD, "--out", "res/sweep", setup=trained_run, expect="res/sweep"),
    case("cache-rm-unknown-key", "cache", "rm", "abc", "--dir", "cache", files={"cache": None}, expect="abc"),
    case("cache-ls-dir-is-a-file", "cache", "ls", "--dir", "cache", setup=a_file("cache"), expect="cache"),
]

# ------------------------------------------------------------------------------------------------- cluster

RECORD = {"cluster_id": "x", "address": "127.0.0.1:1"}
DOWN = ("cluster", "down", "--cluster-dir", "cl")
CLUSTER = [
    case("cluster-down-missing-fields", "cluster", "down", "--cluster-dir", "cl", setup=cluster_record(RECORD)),
    case("cluster-down-not-json", "cluster", "down", "--cluster-dir", "cl", setup=cluster_record("{x")),
    case("cluster-down-a-list", "cluster", "down", "--cluster-dir", "cl", setup=cluster_record("[1, 2]")),
    case("cluster-down-extra-field", *DOWN, setup=cluster_record({**RECORD, "pids": [1]})),
    case("cluster-down-bad-procs", *DOWN, setup=cluster_record('{"cluster_id": "x", "procs": "all"}')),
    case("cluster-status-missing-fields", "cluster", "status", "--cluster-dir", "cl", setup=cluster_record(RECORD)),
    case("cluster-status-nothing", "cluster", "status", "--cluster-dir", "cl", expect="cluster up"),
    case("cluster-up-bad-port", "cluster", "up", "--cluster-dir", "cl", "--port", "99999", expect="99999"),
]


def all_cases() -> list[Case]:
    """The whole table (ids are unique)."""
    from fault_cases import ARGV, config_cases, set_cases, yaml_cases

    out = [*ARGV, *yaml_cases(), *set_cases(), *config_cases(), *data_cases(), *FETCH, *space_cases()]
    out += [*REPORTS, *CLUSTER]
    ids = [c.id for c in out]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    return out
