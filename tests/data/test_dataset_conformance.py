"""Conformance of every dataset declaration in the registry: a new dataset is covered by registering it.

Per declaration: a default root and hints; a fetch target that is well formed, or a one-line reason; the published
counts read back from its split files where ../shared/data has them; its attribute names (one per attribute, each
with a group); and the refusal of every other dataset's folder. Then the helper :func:`xlsa17_dataset` on a
synthetic folder, as an outside package would use it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from zsl_bench.cli import main
from zsl_bench.data.datasets import DATASETS, inspect_dataset, load_dataset, read_dataset
from zsl_bench.data.declare import Counts, DatasetSpec, dataset_spec, register_dataset, xlsa17_dataset
from zsl_bench.data.fetch_targets import fetch_target
from zsl_bench.data.image_list import read_image_list
from zsl_bench.data.split_checks import summarize
from zsl_bench.data.synth import ATTRIBUTE_GROUPS
from zsl_bench.data.xlsa17 import read_att_splits
from zsl_bench.errors import UserError

NAMES = DATASETS.names()
KEYS = ("classes", "attributes", "seen", "unseen", "trainval", "test_seen", "test_unseen")


def _folder(shared_data: Path, spec: DatasetSpec) -> Path:
    """The dataset's folder in ../shared/data; skips when it has no split file there."""
    folder = shared_data / spec.folder
    if not (folder / "att_splits.mat").is_file():
        pytest.skip(f"../shared/data has no {spec.folder}/att_splits.mat")
    return folder


@pytest.mark.parametrize("name", NAMES)
def test_declaration_has_a_root_and_hints(name: str) -> None:
    spec = dataset_spec(name)
    assert spec.name == name and spec.folder and "/" not in spec.folder
    assert spec.default_root() == Path("data") / spec.folder
    root = Path("/data/x") / spec.folder
    for which in ("split", "images", "features"):
        hint = spec.hint(which, root)
        assert hint and "\n" not in hint and "{" not in hint, (which, hint)
    assert spec.image_dir and not spec.image_dir.startswith("/")
    for anchor, image_dir in spec.anchors:
        assert "/" not in anchor and image_dir and not image_dir.startswith("/")


@pytest.mark.parametrize("name", NAMES)
def test_fetch_target_or_one_line_reason(name: str) -> None:
    spec = dataset_spec(name)
    if spec.fetch is None:
        with pytest.raises(UserError) as exc:
            fetch_target(name)
        assert f"data fetch {name}" in str(exc.value) and "\n" not in str(exc.value)
        return
    target = fetch_target(name)
    assert target.archives and target.markers and target.dataset_folder
    for archive in target.archives:
        assert archive.filename and archive.url.startswith(("http://", "https://")) and archive.anchor
        assert archive.url.rsplit("/", 1)[-1] == archive.filename  # --mirror serves the same file names
        assert archive.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", archive.sha256)


@pytest.mark.parametrize("name", NAMES)
def test_published_counts_on_the_shared_split_files(shared_data: Path, name: str) -> None:
    spec = dataset_spec(name)
    if spec.counts is None:
        pytest.skip(f"{name} declares no published counts")
    report, _ = inspect_dataset(name, _folder(shared_data, spec))
    assert tuple(report[k] for k in KEYS) == tuple(getattr(spec.counts, k) for k in KEYS)


@pytest.mark.parametrize("name", NAMES)
def test_attribute_names_have_groups(shared_data: Path, name: str) -> None:
    spec = dataset_spec(name)
    if spec.counts is None:
        pytest.skip(f"{name} declares no published counts: its attribute count is the folder's")
    root = shared_data / spec.folder if (shared_data / spec.folder).is_dir() else None
    info = spec.read_attributes(root, spec.counts.attributes)
    if info is None:
        pytest.skip(f"{name} has no built-in names and no names file in ../shared/data/{spec.folder}")
    assert len(info) == len(info.groups) == len(info.values) == spec.counts.attributes
    assert all(info.names) and all(info.groups) and all(info.values)
    assert 1 < len(info.group_names) < spec.counts.attributes  # groups group something
    with pytest.raises(UserError, match=r"attribute names but att_splits\.mat has"):
        spec.read_attributes(root, spec.counts.attributes + 1)


@pytest.mark.parametrize("name", NAMES)
def test_other_datasets_folders_are_refused(shared_data: Path, name: str) -> None:
    spec = dataset_spec(name)
    if spec.counts is None:
        pytest.skip(f"{name} declares no published counts: any xlsa17 folder is accepted")
    others = [dataset_spec(n) for n in NAMES if n != name and dataset_spec(n).counts not in (None, spec.counts)]
    folders = [(o, shared_data / o.folder) for o in others if (shared_data / o.folder / "att_splits.mat").is_file()]
    if not folders:
        pytest.skip("../shared/data has no folder of another dataset")
    for other, folder in folders:
        with pytest.raises(UserError) as exc:
            read_dataset(name, folder)
        message = str(exc.value)
        assert "\n" not in message and str(folder / "att_splits.mat") in message
        assert f"dataset {name!r} has {spec.counts.classes} x {spec.counts.attributes}" in message
        assert f"--dataset {other.name}" in message, message


@pytest.mark.parametrize(("name", "folder", "holds"), [("cub", "APY", "apy"), ("apy", "CUB", "cub")])
def test_wrong_dataset_is_one_line_exit_2(
    shared_data: Path, capsys: pytest.CaptureFixture[str], name: str, folder: str, holds: str
) -> None:
    root = shared_data / folder
    if not root.is_dir():
        pytest.skip(f"../shared/data/{folder} not found")
    assert main(["data", "inspect", "--dataset", name, "--root", str(root)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1, err
    assert str(root / "att_splits.mat") in lines[0] and f"(--dataset {holds}?)" in lines[0]


def test_awa1_is_not_awa2(shared_data: Path) -> None:
    """Same 50 x 85 shape: the image counts tell them apart."""
    with pytest.raises(UserError, match=r"50 classes x 85 attributes with 19832/4958/5685 .* \(--dataset awa1\?\)"):
        read_dataset("awa2", _folder(shared_data, dataset_spec("awa1")))


# ------------------------------------------------------------------------------------------------ the helper


def _published(root: Path) -> Counts:
    counts = summarize(read_att_splits(root / "att_splits.mat"), read_image_list(root / "image_files.txt")[1])
    return Counts(*(counts[k] for k in KEYS))


def test_a_dataset_in_a_few_lines(synth_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An outside dataset: the synthetic folder declared under another name, read like a built-in."""
    mydata = xlsa17_dataset("mydata_conformance", folder="MYDATA", image_dir="images", counts=_published(synth_root))
    assert mydata.default_root() == Path("data/MYDATA") and mydata.anchors == (("images", "images"),)
    data = load_dataset(mydata, synth_root)  # a declaration works without registering it
    assert data.name == "mydata_conformance" and len(data.image_paths) == data.labels.size
    assert data.sources["order"] == "image_files.txt" and data.attributes.source == "attributes.txt"
    assert data.attributes.group_names == list(ATTRIBUTE_GROUPS)
    assert data.split.train_loc is not None  # the honest validation split, as for every dataset
    if "mydata_conformance" not in DATASETS:
        register_dataset(mydata)
    assert main(["data", "inspect", "--dataset", "mydata_conformance", "--root", str(synth_root), "--json"]) == 0
    assert '"classes": 32' in capsys.readouterr().out
    with pytest.raises(UserError, match="pass a DatasetSpec"):
        register_dataset("mydata")  # type: ignore[arg-type]


def test_helper_attribute_forms_and_a_foreign_folder(synth_root: Path, tmp_path: Path) -> None:
    groups = {g: [f"{g}::{v}" for v in values] for g, values in ATTRIBUTE_GROUPS.items()}
    by_group = xlsa17_dataset("by_group", attributes=groups)
    info = read_dataset(by_group, synth_root).attributes
    assert info.source == "built-in" and info.groups[0] == "colour" and info.names[0] == "colour::red"
    flat = xlsa17_dataset("flat", attributes=[n for names in groups.values() for n in names])
    assert read_dataset(flat, synth_root).attributes.values[0] == "red"
    assert read_dataset(xlsa17_dataset("none", attributes=lambda root, a: None), synth_root).attributes is None
    wrong = xlsa17_dataset("wrong", counts=(10, 5, 6, 4, 100, 20, 30))
    with pytest.raises(UserError, match=r"has 32 classes x 13 attributes but dataset 'wrong' has 10 x 5"):
        read_dataset(wrong, synth_root)
    with pytest.raises(UserError, match=r"not found; .* get the flat split files with `zsl-bench data fetch xlsa17"):
        read_dataset(flat, tmp_path / "nothing")
    labels = read_dataset(flat, synth_root).order.labels
    assert np.array_equal(labels, read_image_list(synth_root / "image_files.txt")[1])
