"""The xlsa17 class lists and the hyper-parameter (train/val class) split, made honest.

xlsa17 ships, per dataset, ``trainvalclasses.txt`` (seen), ``testclasses.txt`` (unseen) and the first of three
hyper-parameter class splits ``trainclasses1.txt`` / ``valclasses1.txt`` (the seen classes divided into train
and validation classes). ``att_splits.mat`` turns split 1 into image indices ``train_loc`` / ``val_loc`` — which,
in the original files, also contain the test-seen images (train_loc ∪ val_loc = trainval ∪ test_seen).

Honest validation (what :func:`honest_train_val` returns and :func:`zsl_bench.data.protocol.make_protocol`
uses) only keeps the trainval part: train = train_loc ∩ trainval_loc, val = val_loc ∩ trainval_loc, so no
test-seen or test-unseen image is ever trained on or validated on.

Where ``train_loc`` / ``val_loc`` come from (:func:`fill_val_split`), first match wins:

1. ``att_splits.mat`` itself (AWA2, SUN, the original CUB file);
2. ``sent_splits.mat`` beside it (the CUB copy in ../shared/data lacks the two fields; its sentence-split twin
   has them, with identical class names and main indices — checked before use);
3. ``trainclasses1.txt`` + ``valclasses1.txt`` and the per-image labels: the trainval images of each list.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from zsl_bench.data.xlsa17 import MAIN_LOCS, Xlsa17Split, read_att_splits
from zsl_bench.errors import UserError

# role -> file name, as in the xlsa17 release
CLASS_LISTS: dict[str, str] = {
    "seen": "trainvalclasses.txt",
    "unseen": "testclasses.txt",
    "train": "trainclasses1.txt",
    "val": "valclasses1.txt",
}


def read_class_list(path: Path, split: Xlsa17Split) -> np.ndarray:
    """Class names one per line → sorted 0-based class ids into ``split.class_names``.

    Raises:
        UserError: unreadable file, a name that is not a class of the split, or a repeated name.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} cannot be read as UTF-8 text ({type(exc).__name__}); replace it") from exc
    index = {name: c for c, name in enumerate(split.class_names)}
    ids: list[int] = []
    for i, line in enumerate(lines):
        name = line.strip()
        if not name:
            continue
        if name not in index:
            raise UserError(
                f"{path} line {i + 1}: {name!r} is not a class of att_splits.mat; the class list and the split "
                "do not belong together"
            )
        if index[name] in ids:
            raise UserError(f"{path} line {i + 1}: class {name!r} is listed twice; list every class once")
        ids.append(index[name])
    return np.array(sorted(ids), dtype=np.int64)


def class_lists(root: Path, split: Xlsa17Split) -> dict[str, tuple[Path, np.ndarray]]:
    """The xlsa17 class lists present in ``root``: role → (path, sorted class ids)."""
    out = {}
    for role, filename in CLASS_LISTS.items():
        path = Path(root) / filename
        if path.is_file():
            out[role] = (path, read_class_list(path, split))
    return out


def honest_train_val(split: Xlsa17Split) -> tuple[np.ndarray, np.ndarray] | None:
    """``(train, val)`` sorted 0-based indices: train_loc ∩ trainval_loc, val_loc ∩ trainval_loc (None if absent)."""
    if split.train_loc is None or split.val_loc is None:
        return None
    return np.intersect1d(split.train_loc, split.trainval_loc), np.intersect1d(split.val_loc, split.trainval_loc)


def _from_sent_splits(path: Path, split: Xlsa17Split) -> Xlsa17Split | None:
    other = read_att_splits(path)
    if other.train_loc is None or other.val_loc is None:
        return None
    if other.class_names != split.class_names:
        raise UserError(f"{path} lists other classes than att_splits.mat; remove it or use the matching file")
    for name in MAIN_LOCS:
        if not np.array_equal(getattr(other, name), getattr(split, name)):
            raise UserError(f"{path} field '{name}' differs from att_splits.mat; remove it or use the matching file")
    return replace(split, train_loc=other.train_loc, val_loc=other.val_loc)


def _from_class_lists(
    lists: dict[str, tuple[Path, np.ndarray]], split: Xlsa17Split, labels: np.ndarray
) -> Xlsa17Split | None:
    if "train" not in lists or "val" not in lists:
        return None
    (train_path, train), (val_path, val) = lists["train"], lists["val"]
    if np.intersect1d(train, val).size:
        raise UserError(f"{train_path} and {val_path} share classes; the validation classes must be disjoint")
    tv = np.sort(split.trainval_loc)
    return replace(split, train_loc=tv[np.isin(labels[tv], train)], val_loc=tv[np.isin(labels[tv], val)])


def fill_val_split(root: Path, split: Xlsa17Split, labels: np.ndarray | None) -> tuple[Xlsa17Split, str | None]:
    """Give ``split`` its ``train_loc`` / ``val_loc`` from the first source that has them (see module doc).

    Args:
        root: the dataset folder.
        split: the split read from ``att_splits.mat``.
        labels: ``[N]`` per-image class ids, or None (then class lists cannot be turned into indices).

    Returns:
        ``(split, source)``; ``source`` names where the two fields came from, None when nowhere.
    """
    if split.train_loc is not None and split.val_loc is not None:
        return split, "att_splits.mat"
    sent = Path(root) / "sent_splits.mat"
    if sent.is_file():
        filled = _from_sent_splits(sent, split)
        if filled is not None:
            return filled, "sent_splits.mat"
    if labels is not None:
        filled = _from_class_lists(class_lists(root, split), split, labels)
        if filled is not None:
            return filled, f"{CLASS_LISTS['train']} + {CLASS_LISTS['val']}"
    return split, None


def _describe(ids: np.ndarray, names: list[str]) -> str:
    return ", ".join(names[int(c)] for c in ids[:3])


def check_class_lists(root: Path, split: Xlsa17Split, labels: np.ndarray) -> list[str]:
    """Check the per-image labels against every class list present in ``root``.

    The classes of trainval_loc must be those of trainvalclasses.txt, of test_unseen_loc those of
    testclasses.txt, of train_loc ∩ trainval / val_loc ∩ trainval those of trainclasses1.txt / valclasses1.txt.

    Returns:
        The file names that were checked.

    Raises:
        UserError: a list disagrees with the labels (naming the file and up to three differing classes).
    """
    observed = {
        "seen": split.trainval_loc,
        "unseen": split.test_unseen_loc,
    }
    honest = honest_train_val(split)
    if honest is not None:
        observed["train"], observed["val"] = honest
    checked = []
    for role, (path, ids) in class_lists(root, split).items():
        if role not in observed:
            continue
        got = np.unique(labels[observed[role]])
        if not np.array_equal(got, ids):
            extra, absent = np.setdiff1d(got, ids), np.setdiff1d(ids, got)
            what = f"has images of {extra.size} unlisted classes (e.g. {_describe(extra, split.class_names)})"
            if not extra.size:
                what = f"misses {absent.size} listed classes (e.g. {_describe(absent, split.class_names)})"
            raise UserError(
                f"{path}: the {role} images of the split {what}; the image labels, the split and the class "
                "lists do not belong together"
            )
        checked.append(path.name)
    return checked
