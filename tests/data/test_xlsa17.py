"""Tests of the xlsa17 reader/writer against the real proposed-split files and hand-made ones."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from zsl_bench.data.image_list import read_image_list, write_image_list
from zsl_bench.data.split_checks import check_split_consistency, check_split_indices, num_images, summarize
from zsl_bench.data.xlsa17 import Xlsa17Split, read_att_splits, write_att_splits
from zsl_bench.errors import UserError

REQUIRED = ("att", "allclasses_names", "trainval_loc", "test_seen_loc", "test_unseen_loc")

# name: classes, attributes, trainval, test_seen, test_unseen, train, val (None = absent from the file)
REAL = {
    "CUB": (200, 312, 7057, 1764, 2967, None, None),
    "AWA2": (50, 85, 23527, 5882, 7913, 20218, 9191),
    "SUN": (717, 102, 10320, 2580, 1440, 11600, 1300),
}


@pytest.fixture
def real_file(shared_data: Path):
    """``real_file(name)`` → the real att_splits.mat of ``name`` (skips, or fails in CI, without ../shared)."""
    return lambda name: shared_data / name / "att_splits.mat"


def assert_user_error(exc: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(exc.value)
    assert str(path) in message
    assert "\n" not in message
    for word in words:
        assert word in message


def small_split(big: bool = False, optional: bool = True) -> Xlsa17Split:
    """A 4-class, 3-attribute split over 12 images (indices shifted past 65535 if ``big``)."""
    att = np.array([[1, 0, 0], [0, 3, 4], [1, 1, 0], [0, 0, 2]], dtype=np.float32)
    norm = att / np.linalg.norm(att, axis=1, keepdims=True)
    shift = 70000 if big else 0
    loc = lambda *xs: np.array(xs, dtype=np.int64) + shift  # noqa: E731
    return Xlsa17Split(
        class_names=["001.alpha", "002.beta gamma", "003.δelta", "004.e"],
        att=norm.astype(np.float32),
        original_att=att * 100,
        trainval_loc=loc(0, 1, 3, 4, 6),
        test_seen_loc=loc(2, 5, 7),
        test_unseen_loc=loc(8, 9, 10, 11),
        train_loc=loc(0, 1, 3) if optional else None,
        val_loc=loc(4, 6) if optional else None,
    )


SMALL_LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3])


# ------------------------------------------------------------------------------------------ real files


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_counts_and_index_base(name: str, real_file) -> None:
    classes, attributes, trainval, test_seen, test_unseen, train, val = REAL[name]
    split = read_att_splits(real_file(name))
    assert (split.num_classes, split.num_attributes) == (classes, attributes)
    assert split.att.shape == (classes, attributes) and split.att.dtype == np.float32
    assert split.original_att is not None and split.original_att.shape == (classes, attributes)
    assert len(split.trainval_loc) == trainval
    assert len(split.test_seen_loc) == test_seen
    assert len(split.test_unseen_loc) == test_unseen
    for loc, expected in ((split.train_loc, train), (split.val_loc, val)):
        assert (loc is None) if expected is None else len(loc) == expected
    np.testing.assert_allclose(np.linalg.norm(split.att, axis=1), 1.0, atol=1e-5)
    main = np.concatenate([split.trainval_loc, split.test_seen_loc, split.test_unseen_loc])
    assert main.dtype == np.int64
    n = trainval + test_seen + test_unseen
    assert main.min() == 0 and main.max() == n - 1  # 0-based
    np.testing.assert_array_equal(np.sort(main), np.arange(n))  # disjoint, union = all N images


def test_real_cub_names_and_missing_hyperparameter_split(real_file, shared_data: Path) -> None:
    split = read_att_splits(real_file("CUB"))
    assert split.class_names[0] == "002.Laysan_Albatross"
    assert split.train_loc is None and split.val_loc is None
    listed = (shared_data / "CUB" / "allclasses.txt").read_text().split()
    assert split.class_names == listed
    assert split.original_att is not None
    assert split.original_att.min() >= 0 and split.original_att.max() <= 100


def cub_labels(split: Xlsa17Split, shared_data: Path) -> np.ndarray:
    """0-based labels of the 11788 CUB images (xlsa17 order = CUB images.txt order)."""
    path = shared_data / "CUB" / "image_class_labels.txt"
    original = np.loadtxt(path, dtype=np.int64)[:, 1]  # original class number 1..200
    position = {int(name.split(".")[0]): i for i, name in enumerate(split.class_names)}
    return np.array([position[c] for c in original])


def test_real_cub_consistency_and_summary(real_file, shared_data: Path) -> None:
    split = read_att_splits(real_file("CUB"))
    labels = cub_labels(split, shared_data)
    check_split_consistency(split, labels)
    assert summarize(split, labels) == {
        "classes": 200,
        "attributes": 312,
        "seen": 150,
        "unseen": 50,
        "trainval": 7057,
        "test_seen": 1764,
        "test_unseen": 2967,
        "images": 11788,
    }
    leaked = labels.copy()
    leaked[split.trainval_loc[0]] = labels[split.test_unseen_loc[0]]
    with pytest.raises(UserError, match="test-unseen classes also have trainval images"):
        check_split_consistency(split, leaked)
    with pytest.raises(UserError, match="only N=11000 images"):
        check_split_consistency(split, labels[:11000])


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_round_trip(name: str, tmp_path: Path, real_file) -> None:
    split = read_att_splits(real_file(name))
    out = tmp_path / "att_splits.mat"
    write_att_splits(out, split)
    assert read_att_splits(out) == split
    raw = scipy.io.loadmat(out)
    original = scipy.io.loadmat(real_file(name))
    for field in ("att", "original_att", *REQUIRED):
        assert raw[field].shape == original[field].shape, field
        assert raw[field].dtype == original[field].dtype, field
    np.testing.assert_array_equal(raw["test_unseen_loc"], original["test_unseen_loc"])


# ------------------------------------------------------------------------------------- write / read


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("optional", [False, True])
def test_round_trip_and_layout(tmp_path: Path, big: bool, optional: bool) -> None:
    split = small_split(big=big, optional=optional)
    path = tmp_path / "att_splits.mat"
    write_att_splits(path, split)
    back = read_att_splits(path)
    assert back == split
    assert back != small_split(big=not big, optional=optional)
    assert back.trainval_loc.dtype == np.int64 and back.att.dtype == np.float32
    raw = scipy.io.loadmat(path)
    assert raw["att"].shape == (3, 4) and raw["att"].dtype == np.float64
    assert raw["allclasses_names"].shape == (4, 1) and raw["allclasses_names"].dtype == object
    assert raw["trainval_loc"].shape == (5, 1)
    assert raw["trainval_loc"].dtype == (np.int32 if big else np.uint16)
    assert raw["trainval_loc"].min() == 1 + (70000 if big else 0)  # stored 1-based
    assert ("train_loc" in raw) == optional
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_write_is_byte_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mat", tmp_path / "b.mat"
    write_att_splits(a, small_split())
    write_att_splits(b, small_split())
    assert a.read_bytes() == b.read_bytes()
    assert b"Created on" not in a.read_bytes()[:116]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "att_splits.mat"
    with pytest.raises(UserError) as exc:
        read_att_splits(path)
    assert_user_error(exc, path, "not found")


@pytest.mark.parametrize("content", [b"", b"hello, this is not a MAT file\n" * 20, bytes(range(256)) * 4])
def test_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "att_splits.mat"
    path.write_bytes(content)
    with pytest.raises(UserError) as exc:
        read_att_splits(path)
    assert_user_error(exc, path)


def test_truncated_file(tmp_path: Path) -> None:
    good = tmp_path / "good.mat"
    write_att_splits(good, small_split())
    path = tmp_path / "att_splits.mat"
    path.write_bytes(good.read_bytes()[:300])
    with pytest.raises(UserError) as exc:
        read_att_splits(path)
    assert_user_error(exc, path)


def raw_fields(split: Xlsa17Split, tmp_path: Path) -> dict:
    path = tmp_path / "fields.mat"
    write_att_splits(path, split)
    return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_field(tmp_path: Path, field: str) -> None:
    fields = raw_fields(small_split(), tmp_path)
    del fields[field]
    path = tmp_path / "att_splits.mat"
    scipy.io.savemat(path, fields)
    with pytest.raises(UserError) as exc:
        read_att_splits(path)
    assert_user_error(exc, path, f"'{field}'")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda f: f.update(att=f["att"][:, :3]), ("'att'", "3 columns", "4 names")),
        (lambda f: f.update(att=f["att"].T), ("'att'", "transposed")),
        (lambda f: f.update(test_seen_loc=np.array([[3], [-1]], np.int32)), ("'test_seen_loc'", "-1 < 1")),
        (lambda f: f.update(val_loc=np.array([[0.0], [3.0]])), ("'val_loc'", "< 1")),
        (lambda f: f.update(trainval_loc=np.array([[1.5]])), ("'trainval_loc'", "non-integer")),
        (lambda f: f.update(original_att=f["original_att"][:2]), ("'original_att'", "shape")),
        (lambda f: f.update(allclasses_names=np.zeros((4, 1))), ("'allclasses_names'",)),
        (lambda f: f.update(test_seen_loc=np.array([[3], [6], [3]], np.uint16)), ("'test_seen_loc'", "repeats", "3")),
    ],
)
def test_malformed_field(tmp_path: Path, change, words) -> None:
    fields = raw_fields(small_split(), tmp_path)
    change(fields)
    path = tmp_path / "att_splits.mat"
    scipy.io.savemat(path, fields)
    with pytest.raises(UserError) as exc:
        read_att_splits(path)
    assert_user_error(exc, path, *words)


def test_class_names_as_row_cell_or_char_matrix(tmp_path: Path) -> None:
    fields = raw_fields(small_split(), tmp_path)
    names = small_split().class_names
    path = tmp_path / "att_splits.mat"
    fields["allclasses_names"] = fields["allclasses_names"].T  # [1, C] cell
    scipy.io.savemat(path, fields)
    assert read_att_splits(path).class_names == names
    fields["allclasses_names"] = np.array([n.ljust(16) for n in names])  # padded char matrix
    scipy.io.savemat(path, fields)
    assert read_att_splits(path).class_names == names


# ---------------------------------------------------------------------------------------- image list


def test_image_list_round_trip(tmp_path: Path) -> None:
    files = [f"images/c{i % 4}/{i:04d}.png" for i in range(12)]
    path = tmp_path / "image_files.txt"
    write_image_list(path, files, SMALL_LABELS)
    assert path.read_text().splitlines()[3] == "images/c3/0003.png\t2"  # 1-based on disk
    got_files, got_labels = read_image_list(path)
    assert got_files == files
    assert got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_labels, SMALL_LABELS)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a.png\t1\nb.png 2\n", ("line 2",)),
        ("a.png\t1\nb.png\tx\n", ("line 2", "not an integer")),
        ("a.png\t0\n", ("line 1", "< 1")),
        ("a.png\t1\n\nc.png\t1\n", ("line 2",)),
        ("/abs/a.png\t1\n", ("line 1", "absolute")),
    ],
)
def test_image_list_malformed(tmp_path: Path, text: str, words) -> None:
    path = tmp_path / "image_files.txt"
    path.write_text(text)
    with pytest.raises(UserError) as exc:
        read_image_list(path)
    assert_user_error(exc, path, *words)


def test_image_list_missing(tmp_path: Path) -> None:
    path = tmp_path / "image_files.txt"
    with pytest.raises(UserError) as exc:
        read_image_list(path)
    assert_user_error(exc, path, "not found")


# ------------------------------------------------------------------------------- consistency, summary


def test_consistency_and_summary_of_small_split() -> None:
    split = small_split()
    check_split_consistency(split, SMALL_LABELS)
    assert summarize(split, SMALL_LABELS) == {
        "classes": 4,
        "attributes": 3,
        "seen": 3,
        "unseen": 1,
        "trainval": 5,
        "test_seen": 3,
        "test_unseen": 4,
        "images": 12,
        "train": 3,
        "val": 2,
    }


def with_field(split: Xlsa17Split, **changes: np.ndarray) -> Xlsa17Split:
    fields = {name: getattr(split, name) for name in split.__dataclass_fields__}
    fields.update(changes)
    return Xlsa17Split(**fields)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"test_seen_loc": np.array([2, 5, 7, 12])}, ("test_seen_loc", "12", "N=12")),
        ({"val_loc": np.array([4, 40])}, ("val_loc", "40")),
        ({"test_seen_loc": np.array([2, 5, 6])}, ("trainval_loc and test_seen_loc", "disjoint")),
        ({"test_unseen_loc": np.array([7, 8, 9, 10, 11])}, ("test_seen_loc and test_unseen_loc",)),
        (
            {"trainval_loc": np.array([0, 1, 3, 4, 6, 8]), "test_unseen_loc": np.array([9, 10, 11])},
            ("004.e", "unseen classes must not be trained on"),
        ),
    ],
)
def test_consistency_errors(changes: dict, words) -> None:
    split = with_field(small_split(), **changes)
    with pytest.raises(UserError) as exc:
        check_split_consistency(split, SMALL_LABELS, source="here.mat")
    assert_user_error(exc, Path("here.mat"), *words)


def test_consistency_rejects_labels_outside_classes() -> None:
    labels = SMALL_LABELS.copy()
    labels[0] = 4
    with pytest.raises(UserError, match="outside the 4 classes"):
        check_split_consistency(small_split(), labels)


def test_split_indices_without_labels() -> None:
    split = small_split()
    check_split_indices(split)  # no N known: no range check
    check_split_indices(split, 12)
    assert num_images(split) == 12
    with pytest.raises(UserError, match="only N=11 images"):
        check_split_indices(split, 11, source="here.mat")
    with pytest.raises(UserError, match="train_loc and val_loc share 1 images"):
        check_split_indices(with_field(split, val_loc=np.array([3, 4])))
    with pytest.raises(UserError, match="val_loc holds 1 test_unseen images"):
        check_split_indices(with_field(split, val_loc=np.array([4, 6, 9])))
    with pytest.raises(UserError, match="trainval_loc and test_unseen_loc share"):
        check_split_indices(with_field(split, trainval_loc=np.array([0, 1, 3, 4, 6, 11])))


def test_consistency_rejects_test_seen_class_without_trainval_images() -> None:
    labels = SMALL_LABELS.copy()
    labels[7] = 3  # a test-seen image of class 3, which is unseen... and has no trainval image
    split = with_field(small_split(), test_unseen_loc=np.array([8, 9, 10, 11]))
    with pytest.raises(UserError, match="test-seen classes have no trainval images"):
        check_split_consistency(split, labels)
