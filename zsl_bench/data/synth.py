"""The procedural synthetic zero-shot dataset, written in the xlsa17 on-disk layout.

Every class is one combination of a value per attribute group (colour, pattern, size, shape), e.g.
``007.red_stripes_large_circle``; its attributes are the one-hot encoding of those values. Images are drawn
with numpy masks over a pixel grid: a shape of the class colour, filled with the class pattern, of the class
size, at a random position on grey noise. Some classes are held out as unseen (test) classes and some seen
ones as validation classes, drawn so that every attribute value of an unseen (val) class occurs in a seen
(train) class: both zero-shot problems are solvable by composing attributes.

Layout written to ``out_dir``::

    att_splits.mat          xlsa17 proposed split (see zsl_bench.data.xlsa17)
    image_files.txt         <images/class/nnnn.png><TAB><1-based label>, xlsa17 index order
    images/<class>/<nnnn>.png
    attributes.txt          one ``group::value`` per line, attribute order
    allclasses.txt, trainvalclasses.txt, testclasses.txt, trainclasses1.txt, valclasses1.txt
    synth_spec.json         the SynthSpec (a directory with the same spec is reused, not regenerated)
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from zsl_bench.data.image_list import read_image_list, write_image_list
from zsl_bench.data.split_checks import summarize
from zsl_bench.data.xlsa17 import Xlsa17Split, read_att_splits, write_att_splits
from zsl_bench.errors import UserError

ATTRIBUTE_GROUPS: dict[str, list[str]] = {
    "colour": ["red", "green", "blue", "yellow"],
    "pattern": ["solid", "stripes", "dots"],
    "size": ["small", "large"],
    "shape": ["circle", "square", "triangle", "cross"],
}

SPEC_FILE = "synth_spec.json"
_SPEC_FORMAT = "zsl_bench.synth/1"
_MAX_DRAWS = 1000

# Nominal colours; per-image jitter is +-_COLOUR_JITTER per channel, so no two colours can meet.
_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 80, 220),
    "yellow": (230, 210, 40),
}
_COLOUR_JITTER = 25.0
# Side of the shape's bounding box as a fraction of the image side; per-image scale jitter +-_SCALE_JITTER.
_SIZE_FRACTION: dict[str, float] = {"small": 0.25, "large": 0.5}
_SCALE_JITTER = 0.15
_STRIPE_ANGLES = np.deg2rad([0.0, 45.0, 90.0, 135.0])


@dataclass(frozen=True)
class SynthSpec:
    """Parameters of the synthetic dataset (validated on construction; bad values raise UserError).

    Attributes:
        seed: seed of every random choice (classes, splits, images).
        image_size: side of the square RGB images in pixels.
        num_classes: number of classes C, 24..96 (distinct attribute combinations).
        num_unseen: unseen (test) classes, >= 6.
        num_val: validation classes taken out of the seen ones (train_loc / val_loc), >= 1.
        images_per_class: images per class, 2..10000.
        test_seen_frac: fraction of each seen class's images put in test_seen_loc, in [0, 1).
    """

    seed: int = 0
    image_size: int = 64
    num_classes: int = 32
    num_unseen: int = 8
    num_val: int = 6
    images_per_class: int = 40
    test_seen_frac: float = 0.2

    def __post_init__(self) -> None:
        combos = math.prod(len(v) for v in ATTRIBUTE_GROUPS.values())
        train = self.num_classes - self.num_unseen - self.num_val
        checks = [
            (self.seed >= 0, "seed must be >= 0"),
            (16 <= self.image_size <= 1024, "image_size must be in 16..1024"),
            (24 <= self.num_classes <= combos, f"num_classes must be in 24..{combos}"),
            (self.num_unseen >= 6, "num_unseen must be >= 6"),
            (self.num_val >= 1, "num_val must be >= 1"),
            (train >= 2, "num_classes - num_unseen - num_val (the train classes) must be >= 2"),
            (2 <= self.images_per_class <= 10000, "images_per_class must be in 2..10000"),
            (0.0 <= self.test_seen_frac < 1.0, "test_seen_frac must be in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"invalid synthetic dataset spec {self}: {message}; choose another value")

    @property
    def test_seen_per_class(self) -> int:
        """Images of each seen class that go to test_seen_loc (at least 1 if the fraction is > 0)."""
        n = self.images_per_class
        k = round(self.test_seen_frac * n)
        if self.test_seen_frac > 0:
            k = max(k, 1)
        return min(k, n - 1)


DEFAULT_SPEC = SynthSpec()


# ----------------------------------------------------------------------------------------- classes & splits


def attribute_names() -> list[str]:
    """``[A]`` attribute names ``group::value`` in attribute (column) order."""
    return [f"{group}::{value}" for group, values in ATTRIBUTE_GROUPS.items() for value in values]


def _all_combos() -> np.ndarray:
    """``[K, G]`` int64 every combination of one value index per group, lexicographic order."""
    ranges = (range(len(v)) for v in ATTRIBUTE_GROUPS.values())
    return np.array(list(itertools.product(*ranges)), dtype=np.int64)


def _one_hot(combos: np.ndarray) -> np.ndarray:
    """``[C, G]`` value indices -> ``[C, A]`` binary attribute matrix (float64)."""
    sizes = [len(v) for v in ATTRIBUTE_GROUPS.values()]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.zeros((combos.shape[0], sum(sizes)))
    np.put_along_axis(out, combos + offsets, 1.0, axis=1)
    return out


def _covers(binary: np.ndarray, needs: np.ndarray, has: np.ndarray) -> bool:
    """Whether every attribute value used by a class in ``needs`` (bool ``[C]``) is used by one in ``has``."""
    return bool(np.all(binary[has].any(axis=0) | ~binary[needs].any(axis=0)))


def _draw_classes(spec: SynthSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the classes and their roles.

    Returns:
        ``combos`` ``[C, G]`` value indices (lexicographic order), ``unseen`` bool ``[C]``,
        ``val`` bool ``[C]``.
    """
    rng = np.random.default_rng(spec.seed)
    everything = _all_combos()
    c = spec.num_classes
    for _ in range(_MAX_DRAWS):
        combos = everything[np.sort(rng.choice(len(everything), size=c, replace=False))]
        order = rng.permutation(c)
        unseen = np.zeros(c, dtype=bool)
        unseen[order[: spec.num_unseen]] = True
        val = np.zeros(c, dtype=bool)
        val[order[spec.num_unseen : spec.num_unseen + spec.num_val]] = True
        binary = _one_hot(combos) > 0
        if _covers(binary, unseen, ~unseen) and _covers(binary, val, ~unseen & ~val):
            return combos, unseen, val
    raise UserError(
        f"could not draw {c} synthetic classes with {spec.num_unseen} unseen and {spec.num_val} val classes "
        f"whose attribute values all occur in training classes ({_MAX_DRAWS} tries); "
        "use fewer unseen/val classes"
    )


def _class_names(combos: np.ndarray) -> list[str]:
    groups = list(ATTRIBUTE_GROUPS.values())
    return [
        f"{i + 1:03d}." + "_".join(groups[g][v] for g, v in enumerate(combo)) for i, combo in enumerate(combos.tolist())
    ]


def _split_locs(spec: SynthSpec, unseen: np.ndarray, val: np.ndarray) -> dict[str, np.ndarray]:
    """0-based image indices of the five xlsa17 splits; image ``i`` is image ``i % n`` of class ``i // n``."""
    c, n = spec.num_classes, spec.images_per_class
    rng = np.random.default_rng([spec.seed, 1])
    rank = np.argsort(np.argsort(rng.random((c, n)), axis=1), axis=1)
    is_test = (rank < spec.test_seen_per_class).reshape(-1)
    labels = np.repeat(np.arange(c), n)
    img_unseen, img_val = unseen[labels], val[labels]
    trainval = ~img_unseen & ~is_test
    return {
        "trainval_loc": np.flatnonzero(trainval),
        "test_seen_loc": np.flatnonzero(~img_unseen & is_test),
        "test_unseen_loc": np.flatnonzero(img_unseen),
        "train_loc": np.flatnonzero(trainval & ~img_val),
        "val_loc": np.flatnonzero(trainval & img_val),
    }


# ------------------------------------------------------------------------------------------------- images


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, half: float) -> np.ndarray:
    """Bool ``[S, S]`` mask of ``shape`` (bounding-box half-side ``half``); ``dx, dy``: offsets to centre."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return dx * dx + dy * dy <= half * half
    if shape == "square":
        return (ax <= half * 0.9) & (ay <= half * 0.9)
    if shape == "triangle":  # apex up: the half-width grows from 0 at the top to ``half`` at the bottom
        return (ay <= half) & (ax <= (dy + half) / 2.0)
    if shape == "cross":
        bar = half / 3.0
        return ((ax <= half) & (ay <= bar)) | ((ay <= half) & (ax <= bar))
    raise ValueError(f"unknown shape {shape!r}")


def _pattern_mask(pattern: str, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bool ``[S, S]`` where the pattern is dark (stripes: alternate bands; dots: a grid of round spots)."""
    period = max(5.0, xx.shape[0] / 10.0)
    if pattern == "solid":
        return np.zeros(xx.shape, dtype=bool)
    if pattern == "stripes":
        angle = rng.choice(_STRIPE_ANGLES)
        u = xx * np.cos(angle) + yy * np.sin(angle) + rng.uniform(0.0, period)
        return np.mod(u, period) < period / 2.0
    if pattern == "dots":
        ox, oy = rng.uniform(0.0, period, size=2)
        dx = np.mod(xx + ox, period) - period / 2.0
        dy = np.mod(yy + oy, period) - period / 2.0
        return dx * dx + dy * dy <= (0.3 * period) ** 2
    raise ValueError(f"unknown pattern {pattern!r}")


def render_image(values: dict[str, str], size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one image of the class with attribute ``values`` (group -> value).

    Returns:
        ``[size, size, 3]`` uint8 RGB.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    half = _SIZE_FRACTION[values["size"]] * size / 2.0 * rng.uniform(1 - _SCALE_JITTER, 1 + _SCALE_JITTER)
    cx, cy = rng.uniform(half + 1.0, size - half - 1.0, size=2)
    inside = _shape_mask(values["shape"], xx - cx, yy - cy, half)
    dark = _pattern_mask(values["pattern"], xx, yy, rng)
    jitter = rng.uniform(-_COLOUR_JITTER, _COLOUR_JITTER, 3)
    colour = np.asarray(_RGB[values["colour"]], dtype=np.float64) + jitter
    grey = rng.uniform(85.0, 170.0) + rng.uniform(-8.0, 8.0, 3)
    image = grey + rng.normal(0.0, 10.0, (size, size, 3))
    fill = np.where(dark[..., None], colour * 0.3, colour)
    image = np.where(inside[..., None], fill, image) + rng.normal(0.0, 4.0, (size, size, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _write_images(root: Path, spec: SynthSpec, names: list[str], combos: np.ndarray) -> list[str]:
    """Render and save every PNG; return the ``[N]`` relative paths in xlsa17 index order."""
    groups = list(ATTRIBUTE_GROUPS.items())
    files = []
    for c, (name, combo) in enumerate(zip(names, combos.tolist(), strict=True)):
        values = {group: vals[v] for (group, vals), v in zip(groups, combo, strict=True)}
        (root / "images" / name).mkdir(parents=True)
        for j in range(spec.images_per_class):
            rel = f"images/{name}/{j:04d}.png"
            rng = np.random.default_rng([spec.seed, 2, c, j])
            Image.fromarray(render_image(values, spec.image_size, rng)).save(root / rel, format="PNG")
            files.append(rel)
    return files


# ----------------------------------------------------------------------------------------------- generate


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _spec_json(spec: SynthSpec) -> str:
    return json.dumps({"format": _SPEC_FORMAT, "spec": asdict(spec)}, indent=2, sort_keys=True) + "\n"


def _build(root: Path, spec: SynthSpec) -> None:
    """Write the whole dataset into the (empty) directory ``root``."""
    combos, unseen, val = _draw_classes(spec)
    names = _class_names(combos)
    binary = _one_hot(combos)
    locs = _split_locs(spec, unseen, val)
    files = _write_images(root, spec, names, combos)
    labels = np.repeat(np.arange(spec.num_classes), spec.images_per_class)
    att = binary / np.linalg.norm(binary, axis=1, keepdims=True)
    split = Xlsa17Split(
        class_names=names,
        att=att.astype(np.float32),
        original_att=(100.0 * binary).astype(np.float32),
        **locs,
    )
    write_att_splits(root / "att_splits.mat", split)
    write_image_list(root / "image_files.txt", files, labels)
    _write_lines(root / "attributes.txt", attribute_names())
    _write_lines(root / "allclasses.txt", names)
    _write_lines(root / "trainvalclasses.txt", [n for n, u in zip(names, unseen, strict=True) if not u])
    _write_lines(root / "testclasses.txt", [n for n, u in zip(names, unseen, strict=True) if u])
    train = ~unseen & ~val
    _write_lines(root / "trainclasses1.txt", [n for n, t in zip(names, train, strict=True) if t])
    _write_lines(root / "valclasses1.txt", [n for n, v in zip(names, val, strict=True) if v])
    (root / SPEC_FILE).write_text(_spec_json(spec), encoding="utf-8")


def _counts(root: Path) -> dict[str, int]:
    split = read_att_splits(root / "att_splits.mat")
    _, labels = read_image_list(root / "image_files.txt")
    return summarize(split, labels)


def _existing(out_dir: Path, spec: SynthSpec) -> dict[str, int] | None:
    """Counts of an already generated identical dataset at ``out_dir``; None if there is nothing there.

    Raises:
        UserError: ``out_dir`` holds something else (another spec, other files, a file).
    """
    if not out_dir.exists():
        return None
    fix = "pass another --out or delete it"
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} exists and is not a directory; {fix}")
    spec_file = out_dir / SPEC_FILE
    if not spec_file.is_file():
        if not any(out_dir.iterdir()):
            return None
        raise UserError(f"{out_dir} exists and is not a synthetic dataset (no {SPEC_FILE}); {fix}")
    try:
        stored = json.loads(spec_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{spec_file} is unreadable ({type(exc).__name__}); {fix}") from exc
    wanted = asdict(spec)
    got = stored.get("spec") if isinstance(stored, dict) else None
    if not isinstance(got, dict) or stored.get("format") != _SPEC_FORMAT:
        raise UserError(f"{spec_file} is not a {_SPEC_FORMAT} spec; {fix}")
    if got != wanted:
        diff = ", ".join(f"{k}={got.get(k)!r} there vs {v!r}" for k, v in wanted.items() if got.get(k) != v)
        raise UserError(f"{out_dir} holds a synthetic dataset with another spec ({diff}); {fix}")
    return _counts(out_dir)


def generate(out_dir: Path, spec: SynthSpec = DEFAULT_SPEC) -> dict[str, int]:
    """Generate the synthetic dataset into ``out_dir`` (atomically), or reuse an identical one already there.

    The same spec always gives byte-identical files. The data are written into a temporary sibling directory
    ``.<name>.tmp-XXXX`` that is renamed to ``out_dir`` at the end.

    Returns:
        Counts: ``classes``, ``attributes``, ``seen``, ``unseen``, ``trainval``, ``test_seen``,
        ``test_unseen``, ``images``, ``train``, ``val`` (see :func:`zsl_bench.data.split_checks.summarize`).

    Raises:
        UserError: ``out_dir`` exists and is not this same synthetic dataset, or the spec is unsatisfiable.
    """
    out_dir = Path(out_dir)
    counts = _existing(out_dir, spec)
    if counts is not None:
        return counts
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _build(tmp, spec)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            # Another process may have finished the same dataset first: accept it if identical.
            counts = _existing(out_dir, spec)
            if counts is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return counts
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _counts(out_dir)
