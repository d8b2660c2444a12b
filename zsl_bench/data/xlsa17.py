"""Reader and writer of the xlsa17 "proposed split" files (Xian et al., 2017/2018).

An xlsa17 ``att_splits.mat`` holds, in MATLAB layout:

* ``att`` ``[A, C]`` float64 class-attribute matrix, each class column L2-normalised;
* ``original_att`` ``[A, C]`` the same before normalisation (optional);
* ``allclasses_names`` ``[C, 1]`` cell array of class-name strings;
* ``trainval_loc``, ``test_seen_loc``, ``test_unseen_loc`` (and optionally ``train_loc``, ``val_loc``)
  ``[n, 1]`` 1-based integer indices into the per-image rows of the matching ``res101.mat``.

In memory (:class:`Xlsa17Split`) matrices are class-major (``[C, A]`` float32) and indices are 0-based int64.

The per-image list ``image_files.txt`` is read and written by :mod:`zsl_bench.data.image_list`; the checks of a
split against it by :mod:`zsl_bench.data.split_checks`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from zsl_bench import atomic
from zsl_bench.errors import UserError

REQUIRED_FIELDS = ("att", "allclasses_names", "trainval_loc", "test_seen_loc", "test_unseen_loc")
MAIN_LOCS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")
OPTIONAL_LOCS = ("train_loc", "val_loc")

# The 116-byte text header of a MAT v5 file; scipy puts the current time there, we want byte-identical files.
_MAT_HEADER_LEN = 116
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: zsl_bench.data.xlsa17"


@dataclass(frozen=True, eq=False)
class Xlsa17Split:
    """One xlsa17 proposed split, class-major and 0-based.

    Attributes:
        class_names: ``[C]`` class names in file order (``allclasses_names``).
        att: ``[C, A]`` float32, the file's ``att`` transposed (xlsa17 stores each class L2-normalised).
        original_att: ``[C, A]`` float32 un-normalised attributes, or None when the file has none.
        trainval_loc: ``[n_trainval]`` int64 0-based image indices of the seen-class training images.
        test_seen_loc: ``[n_test_seen]`` int64 0-based indices of the seen-class test images.
        test_unseen_loc: ``[n_test_unseen]`` int64 0-based indices of the unseen-class test images.
        train_loc: ``[n_train]`` int64 0-based indices (hyper-parameter split 1), or None when absent.
        val_loc: ``[n_val]`` int64 0-based indices (hyper-parameter split 1), or None when absent.

    Equality compares every field by value (arrays element-wise, dtypes ignored).
    """

    class_names: list[str]
    att: np.ndarray
    original_att: np.ndarray | None
    trainval_loc: np.ndarray
    test_seen_loc: np.ndarray
    test_unseen_loc: np.ndarray
    train_loc: np.ndarray | None = None
    val_loc: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        """C, the number of classes."""
        return len(self.class_names)

    @property
    def num_attributes(self) -> int:
        """A, the number of attributes (columns of ``att``)."""
        return int(self.att.shape[1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Xlsa17Split):
            return NotImplemented
        if list(self.class_names) != list(other.class_names):
            return False
        names = ("att", "original_att", *MAIN_LOCS, *OPTIONAL_LOCS)
        return all(_optional_arrays_equal(getattr(self, n), getattr(other, n)) for n in names)


def _optional_arrays_equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))


# --------------------------------------------------------------------------------------------------- reading


def one_line(text: object) -> str:
    """``str(text)`` squeezed onto one line (UserError messages must be single lines)."""
    return " ".join(str(text).split())


def _load_mat(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UserError(
            f"{path} not found; expected the xlsa17 att_splits.mat at {path}: check the dataset directory "
            "or download the xlsa17 proposed splits there"
        )
    if not path.is_file():
        raise UserError(f"{path} is not a file; expected the xlsa17 att_splits.mat there: point to the file")
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as exc:  # scipy's message for MATLAB v7.3 (HDF5) files
        raise UserError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which is not supported: re-save it with save(..., '-v7')"
        ) from exc
    except Exception as exc:  # a corrupt or foreign file can fail inside scipy in many ways
        raise UserError(
            f"{path} is not a readable MATLAB .mat file ({type(exc).__name__}: {one_line(exc)}); "
            "replace it with an intact copy of the xlsa17 att_splits.mat"
        ) from exc


def _field(mat: dict[str, Any], name: str, path: Path) -> np.ndarray:
    if name not in mat:
        raise UserError(
            f"{path} has no field '{name}'; an xlsa17 att_splits.mat needs {', '.join(REQUIRED_FIELDS)}: "
            "use the file from the xlsa17 proposed splits"
        )
    return np.asarray(mat[name])


def _cell_to_str(item: Any) -> str:
    """Unwrap one entry of a loadmat'ed cell array of strings (nested 1-element arrays) into a str."""
    while isinstance(item, np.ndarray):
        flat = item.ravel(order="F")
        if flat.size == 0:
            return ""
        if flat.size != 1:
            raise ValueError(f"expected one string, got an array of shape {item.shape}")
        item = flat[0]
    if isinstance(item, bytes):
        item = item.decode("utf-8")
    if not isinstance(item, str):
        raise ValueError(f"expected a string, got {type(item).__name__}")
    return item.strip()


def _class_names(raw: np.ndarray, path: Path) -> list[str]:
    """Class names from ``allclasses_names``: a cell array (object array) or a char matrix (str array)."""
    where = f"{path} field 'allclasses_names'"
    if raw.dtype.kind in "US":
        names = [str(s).strip() for s in raw.ravel(order="F")]
    elif raw.dtype.kind == "O":
        try:
            names = [_cell_to_str(x) for x in raw.ravel(order="F")]
        except (ValueError, UnicodeDecodeError) as exc:
            msg = f"{where} is not a cell array of strings ({one_line(exc)}); fix the file"
            raise UserError(msg) from exc
    else:
        raise UserError(f"{where} has dtype {raw.dtype}, not strings; it must be a cell array of class names")
    if not names:
        raise UserError(f"{where} is empty; the file must list at least one class")
    if "" in names:
        raise UserError(f"{where} entry {names.index('')} is an empty name; give every class a name")
    uniq, counts = np.unique(np.asarray(names, dtype=object), return_counts=True)
    if (counts > 1).any():
        raise UserError(f"{where} repeats class name {uniq[counts > 1][0]!r}; class names must be unique")
    return names


def _matrix(raw: np.ndarray, name: str, path: Path) -> np.ndarray:
    if raw.ndim != 2 or raw.dtype.kind not in "biuf":
        raise UserError(
            f"{path} field '{name}' must be a 2-D numeric [attributes, classes] matrix, "
            f"got dtype {raw.dtype} shape {raw.shape}; fix the file"
        )
    return raw


def _loc(raw: np.ndarray, name: str, path: Path) -> np.ndarray:
    """1-based MATLAB index array (any shape) -> 0-based int64 ``[n]``."""
    where = f"{path} field '{name}'"
    if raw.dtype.kind not in "biuf":
        raise UserError(f"{where} has dtype {raw.dtype}; it must hold integer image indices")
    flat = raw.ravel(order="F")
    if flat.dtype.kind == "f" and not np.all(np.isfinite(flat) & (flat == np.round(flat))):
        raise UserError(f"{where} holds non-integer values; it must hold integer image indices")
    if flat.size and flat.min() < 1:
        raise UserError(
            f"{where} has index {flat.min():g} < 1; xlsa17 indices are 1-based MATLAB indices: fix the file"
        )
    loc = flat.astype(np.int64) - 1
    uniq, counts = np.unique(loc, return_counts=True)
    if uniq.size != loc.size:
        first = int(uniq[counts > 1][0])
        raise UserError(
            f"{where} repeats image index {first + 1} (1-based; {loc.size - uniq.size} duplicates in all); "
            "every image must appear once: fix the file"
        )
    return loc


def read_att_splits(path: Path) -> Xlsa17Split:
    """Read an xlsa17 ``att_splits.mat``.

    Args:
        path: the ``.mat`` file (MATLAB v5/v7).

    Returns:
        The split with ``att``/``original_att`` transposed to ``[C, A]`` float32 and every ``*_loc``
        0-based int64.

    Raises:
        UserError: the file is missing or unreadable, a required field is missing or malformed, ``att`` does
            not have one column per class name, or an index is < 1.
    """
    path = Path(path)
    mat = _load_mat(path)
    names = _class_names(_field(mat, "allclasses_names", path), path)
    att = _matrix(_field(mat, "att", path), "att", path)
    if att.shape[1] != len(names):
        transposed = att.shape[0] == len(names)
        hint = " (it looks transposed)" if transposed else ""
        raise UserError(
            f"{path} field 'att' has {att.shape[1]} columns but 'allclasses_names' has {len(names)} "
            f"names{hint}; att must be [attributes, classes] with one column per class"
        )
    original = None
    if "original_att" in mat:
        original = _matrix(np.asarray(mat["original_att"]), "original_att", path)
        if original.shape != att.shape:
            raise UserError(
                f"{path} field 'original_att' has shape {original.shape} but 'att' has {att.shape}; they must match"
            )
        original = np.ascontiguousarray(original.T, dtype=np.float32)
    locs = {name: _loc(_field(mat, name, path), name, path) for name in MAIN_LOCS}
    optional = {n: _loc(np.asarray(mat[n]), n, path) if n in mat else None for n in OPTIONAL_LOCS}
    return Xlsa17Split(
        class_names=names,
        att=np.ascontiguousarray(att.T, dtype=np.float32),
        original_att=original,
        **locs,
        **optional,
    )


# --------------------------------------------------------------------------------------------------- writing


def _mat_loc(loc: np.ndarray, name: str) -> np.ndarray:
    """0-based ``[n]`` indices -> 1-based ``[n, 1]`` in the smallest of uint16 / int32 / uint32 that fits."""
    one_based = np.asarray(loc, dtype=np.int64).reshape(-1) + 1
    top = int(one_based.max()) if one_based.size else 0
    if one_based.size and one_based.min() < 1:
        raise ValueError(f"{name} has a negative index; indices must be 0-based and >= 0")
    if top <= np.iinfo(np.uint16).max:
        dtype: type[np.integer] = np.uint16
    elif top <= np.iinfo(np.int32).max:
        dtype = np.int32
    elif top <= np.iinfo(np.uint32).max:
        dtype = np.uint32
    else:
        raise ValueError(f"{name} has index {top} > 2**32 - 1, which a MAT file cannot store here")
    return one_based.astype(dtype).reshape(-1, 1)


def _cell_of_strings(names: Iterable[str]) -> np.ndarray:
    names = list(names)
    cell = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cell[i, 0] = str(name)
    return cell


def write_att_splits(path: Path, split: Xlsa17Split) -> None:
    """Write ``split`` as an xlsa17-layout MATLAB v5 ``att_splits.mat``, atomically and byte-reproducibly.

    Layout: ``att`` / ``original_att`` ``[A, C]`` float64, ``allclasses_names`` ``[C, 1]`` cell of strings,
    each ``*_loc`` ``[n, 1]`` 1-based (uint16 when the largest index fits, else int32 / uint32). Optional
    fields that are None are not written. The MAT header carries no timestamp: equal splits, equal bytes.
    """
    path = Path(path)
    if split.att.ndim != 2 or split.att.shape[0] != split.num_classes:
        raise ValueError(f"att must be [C={split.num_classes}, A], got shape {split.att.shape}")
    mdict: dict[str, np.ndarray] = {"allclasses_names": _cell_of_strings(split.class_names)}
    mdict["att"] = np.asarray(split.att, dtype=np.float64).T
    if split.original_att is not None:
        mdict["original_att"] = np.asarray(split.original_att, dtype=np.float64).T
    for name in (*MAIN_LOCS, *OPTIONAL_LOCS):
        loc = getattr(split, name)
        if loc is not None:
            mdict[name] = _mat_loc(loc, name)
    buf = io.BytesIO()
    scipy.io.savemat(buf, mdict, format="5", do_compression=True, oned_as="column")
    data = buf.getvalue()
    header = _MAT_HEADER.ljust(_MAT_HEADER_LEN, b" ")
    atomic.write_bytes(path, header + data[_MAT_HEADER_LEN:], fsync=True, mode=0o644)
