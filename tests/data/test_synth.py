"""Tests of the procedural synthetic dataset generator."""

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsl_bench.data.image_list import read_image_list
from zsl_bench.data.split_checks import check_split_consistency
from zsl_bench.data.synth import _RGB, ATTRIBUTE_GROUPS, SynthSpec, _draw_classes, _one_hot, generate
from zsl_bench.data.xlsa17 import read_att_splits
from zsl_bench.errors import UserError

DEFAULT_COUNTS = {
    "classes": 32,
    "attributes": 13,
    "seen": 24,
    "unseen": 8,
    "trainval": 24 * 32,
    "test_seen": 24 * 8,
    "test_unseen": 8 * 40,
    "images": 32 * 40,
    "train": 18 * 32,
    "val": 6 * 32,
}
# Smallest valid spec: fast to generate for the directory-handling tests.
TINY = SynthSpec(seed=3, image_size=32, num_classes=24, num_unseen=6, num_val=2, images_per_class=2)


@pytest.fixture(scope="module")
def default_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "default"
    start = time.perf_counter()
    counts = generate(out)
    print(f"\ndefault synthetic dataset generated in {time.perf_counter() - start:.2f} s")
    return out, counts


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_counts_and_files(default_dir: tuple[Path, dict]) -> None:
    out, counts = default_dir
    assert counts == DEFAULT_COUNTS
    assert counts["classes"] >= 24 and counts["unseen"] >= 6
    split = read_att_splits(out / "att_splits.mat")
    files, labels = read_image_list(out / "image_files.txt")
    check_split_consistency(split, labels, source=out)
    assert len(files) == counts["images"] and all((out / f).is_file() for f in files[::97])
    np.testing.assert_array_equal(labels, np.repeat(np.arange(32), 40))  # sorted by (class, image number)
    assert files[41] == f"images/{split.class_names[1]}/0001.png"
    assert lines(out / "allclasses.txt") == split.class_names
    assert len(set(split.class_names)) == 32
    expected = [f"{g}::{v}" for g, vals in ATTRIBUTE_GROUPS.items() for v in vals]
    assert lines(out / "attributes.txt") == expected
    # roles of the class lists agree with the index splits
    listed = {
        "testclasses.txt": split.test_unseen_loc,
        "trainvalclasses.txt": split.trainval_loc,
        "trainclasses1.txt": split.train_loc,
        "valclasses1.txt": split.val_loc,
    }
    for name, loc in listed.items():
        assert {split.class_names[c] for c in set(labels[loc])} == set(lines(out / name)), name
    # train/val partition trainval exactly (no test images in them)
    np.testing.assert_array_equal(np.sort(np.r_[split.train_loc, split.val_loc]), np.sort(split.trainval_loc))
    # each seen class: 8 test-seen and 32 trainval images
    assert set(np.bincount(labels[split.test_seen_loc])[sorted(set(labels[split.test_seen_loc]))]) == {8}


def test_attribute_matrices(default_dir: tuple[Path, dict]) -> None:
    split = read_att_splits(default_dir[0] / "att_splits.mat")
    assert split.original_att is not None
    assert set(np.unique(split.original_att)) == {0.0, 100.0}
    np.testing.assert_allclose(np.linalg.norm(split.att, axis=1), 1.0, rtol=1e-6)
    norms = np.linalg.norm(split.original_att, axis=1, keepdims=True)
    np.testing.assert_allclose(split.att * norms, split.original_att)
    # one value per group
    sizes = [len(v) for v in ATTRIBUTE_GROUPS.values()]
    for block in np.split(split.original_att > 0, np.cumsum(sizes)[:-1], axis=1):
        np.testing.assert_array_equal(block.sum(axis=1), 1)
    assert len({tuple(row) for row in split.original_att}) == 32  # distinct classes


def covers(binary: np.ndarray, needs: np.ndarray, has: np.ndarray) -> bool:
    return bool(np.all(binary[needs].any(axis=0) <= binary[has].any(axis=0)))


def test_unseen_and_val_attribute_values_occur_in_training_classes(default_dir: tuple[Path, dict]) -> None:
    out, _ = default_dir
    split = read_att_splits(out / "att_splits.mat")
    _, labels = read_image_list(out / "image_files.txt")
    binary = split.original_att > 0
    classes = np.arange(32)
    unseen = np.isin(classes, labels[split.test_unseen_loc])
    val = np.isin(classes, labels[split.val_loc])
    train = np.isin(classes, labels[split.train_loc])
    assert unseen.sum() == 8 and val.sum() == 6 and train.sum() == 18
    assert covers(binary, unseen, ~unseen)
    assert covers(binary, val, train)


@pytest.mark.parametrize("spec", [SynthSpec(), SynthSpec(num_classes=24, num_unseen=12, num_val=6)])
def test_class_draw_constraints_for_many_seeds(spec: SynthSpec) -> None:
    seen_draws = set()
    for seed in range(40):
        s = SynthSpec(**{**spec.__dict__, "seed": seed})
        combos, unseen, val = _draw_classes(s)
        binary = _one_hot(combos) > 0
        assert len({tuple(c) for c in combos.tolist()}) == s.num_classes
        assert unseen.sum() == s.num_unseen and val.sum() == s.num_val and not (unseen & val).any()
        assert covers(binary, unseen, ~unseen)
        assert covers(binary, val, ~unseen & ~val)
        seen_draws.add(combos.tobytes() + unseen.tobytes())
    assert len(seen_draws) == 40


def test_unsatisfiable_spec_raises() -> None:
    spec = SynthSpec(num_classes=24, num_unseen=6, num_val=16)
    with pytest.raises(UserError, match="could not draw"):
        _draw_classes(spec)


def test_images_decode(default_dir: tuple[Path, dict]) -> None:
    out, _ = default_dir
    files, _ = read_image_list(out / "image_files.txt")
    for rel in files[::53]:
        with Image.open(out / rel) as image:
            assert image.format == "PNG" and image.mode == "RGB" and image.size == (64, 64)


def foreground_stats(path: Path) -> tuple[int, np.ndarray]:
    """Bounding-box side and median colour of the strongly coloured pixels of an image."""
    rgb = np.asarray(Image.open(path), dtype=np.int64)
    saturated = rgb.max(axis=2) - rgb.min(axis=2) > 70
    rows = np.flatnonzero(saturated.sum(axis=1) >= 3)
    cols = np.flatnonzero(saturated.sum(axis=0) >= 3)
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    return side, np.median(rgb[saturated], axis=0)


def test_colour_and_size_are_visible(default_dir: tuple[Path, dict]) -> None:
    out, _ = default_dir
    files, _ = read_image_list(out / "image_files.txt")
    names = list(_RGB)
    nominal = np.array([_RGB[n] for n in names])
    sides: dict[str, list[int]] = {"small": [], "large": []}
    for rel in files[::3]:
        colour, _, size, _ = rel.split("/")[1].split(".", 1)[1].split("_")
        side, median = foreground_stats(out / rel)
        sides[size].append(side)
        assert names[np.argmin(np.abs(nominal - median).sum(axis=1))] == colour, rel
    print(
        f"\nshape side: small {min(sides['small'])}..{max(sides['small'])}, "
        f"large {min(sides['large'])}..{max(sides['large'])}"
    )
    assert max(sides["small"]) < min(sides["large"])


def test_deterministic_and_seed_dependent(default_dir: tuple[Path, dict], tmp_path: Path) -> None:
    first, _ = default_dir
    second, other = tmp_path / "again", tmp_path / "other"
    generate(second, SynthSpec())
    generate(other, SynthSpec(seed=1))
    names = ["att_splits.mat", "image_files.txt", *lines(first / "image_files.txt")[::41]]
    for name in names:
        name = name.split("\t")[0]
        assert sha(first / name) == sha(second / name), name
    assert sha(first / "att_splits.mat") != sha(other / "att_splits.mat")
    assert sha(first / "image_files.txt") != sha(other / "image_files.txt")
    common = {p.name for p in (first / "images").iterdir()} & {p.name for p in (other / "images").iterdir()}
    assert common  # same class, different seed -> different pixels
    for name in sorted(common)[:3]:
        assert sha(first / "images" / name / "0000.png") != sha(other / "images" / name / "0000.png")


def test_rerun_is_a_noop(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    counts = generate(out, TINY)
    assert counts["classes"] == 24 and counts["images"] == 48
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert generate(out, TINY) == counts
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no temp dirs left


@pytest.mark.parametrize("kind", ["other_spec", "other_files", "a_file", "bad_json"])
def test_conflicting_out_dir(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "data"
    if kind == "other_spec":
        generate(out, TINY)
    elif kind == "other_files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif kind == "a_file":
        out.write_text("mine")
    else:
        out.mkdir()
        (out / "synth_spec.json").write_text("{not json")
    spec = SynthSpec(**{**TINY.__dict__, "seed": 4})
    with pytest.raises(UserError) as exc:
        generate(out, spec)
    message = str(exc.value)
    assert str(out) in message and "\n" not in message and "another --out or delete it" in message
    if kind == "other_spec":
        assert "seed=3" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_empty_existing_dir_is_used(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert generate(out, TINY)["images"] == 48
    assert (out / "att_splits.mat").is_file()


@pytest.mark.parametrize(
    "bad",
    [
        {"num_classes": 23},
        {"num_classes": 97},
        {"num_unseen": 5},
        {"num_val": 0},
        {"test_seen_frac": 1.0},
        {"images_per_class": 1},
        {"seed": -1},
    ],
)
def test_invalid_spec(bad: dict) -> None:
    with pytest.raises(UserError, match="invalid synthetic dataset spec"):
        SynthSpec(**bad)
