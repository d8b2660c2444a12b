"""Fixtures of the data tests: a tiny CUB-layout dataset built on the fly, and a local HTTP file server."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsl_bench.data.declare import DATASETS, dataset_spec, register_dataset
from zsl_bench.data.xlsa17 import Xlsa17Split, write_att_splits

# Original CUB-style class numbers and names; allclasses_names lists them in another order on purpose.
TINY_CLASSES = ["001.Alpha_bird", "002.Beta_bird", "003.Gamma_bird", "004.Delta_bird", "005.Eps_bird", "006.Zeta_bird"]
TINY_ORDER = [1, 0, 2, 5, 3, 4]  # allclasses_names[i] = TINY_CLASSES[TINY_ORDER[i]]
TINY_PER_CLASS = 5

# The tiny CUB is CUB's declaration without the published counts (6 x 4, not 200 x 312): under the name "cub" the
# reader would refuse it as another dataset. Registered like any outside dataset, so the CLI finds it too.
TINY_CUB = "tiny_cub"
if TINY_CUB not in DATASETS:
    register_dataset(replace(dataset_spec("cub"), name=TINY_CUB, counts=None, description="the tests' 6-class CUB"))


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (40, 30)) -> None:
    """A small noisy RGB JPEG (``size`` = width, height)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([xx * 5 % 256, yy * 7 % 256, (xx + yy) * 3 % 256], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def make_tiny_cub(root: Path, images: bool = True) -> dict:
    """A CUB-layout folder: 6 classes x 5 images, classes 003/006 unseen, 004 the validation class.

    Writes att_splits.mat (no train_loc/val_loc, like the shared CUB copy), CUB_200_2011/images.txt,
    image_class_labels.txt, attributes.txt, the xlsa17 class lists and (if ``images``) the JPEGs.
    Returns the facts the tests compare against.
    """
    names = [TINY_CLASSES[i] for i in TINY_ORDER]
    position = {TINY_CLASSES[o]: i for i, o in enumerate(TINY_ORDER)}
    rel, labels = [], []
    for original in TINY_CLASSES:  # images.txt is class-major by original class number
        for j in range(TINY_PER_CLASS):
            rel.append(f"{original}/{original.split('.')[1]}_{j:04d}.jpg")
            labels.append(position[original])
    labels = np.array(labels)
    unseen = {position["003.Gamma_bird"], position["006.Zeta_bird"]}
    val = {position["004.Delta_bird"]}
    idx = np.arange(labels.size)
    is_test_seen = (idx % TINY_PER_CLASS) == 0
    is_unseen = np.isin(labels, list(unseen))
    att = np.random.default_rng(0).random((6, 4)).astype(np.float32) + 0.1
    split = Xlsa17Split(
        class_names=names,
        att=att / np.linalg.norm(att, axis=1, keepdims=True),
        original_att=att * 100,
        trainval_loc=idx[~is_unseen & ~is_test_seen],
        test_seen_loc=idx[~is_unseen & is_test_seen],
        test_unseen_loc=idx[is_unseen],
    )
    root.mkdir(parents=True, exist_ok=True)
    write_att_splits(root / "att_splits.mat", split)
    cub = root / "CUB_200_2011"
    cub.mkdir(exist_ok=True)
    (cub / "images.txt").write_text("".join(f"{i + 1} {r}\n" for i, r in enumerate(rel)))
    numbers = [int(r.split(".")[0]) for r in rel]
    (cub / "image_class_labels.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(numbers)))
    groups = [
        "has_bill_shape::curved_(up_or_down)",
        "has_bill_shape::dagger",
        "has_wing_color::blue",
        "has_size::small_(5_-_9_in)",
    ]
    (root / "attributes.txt").write_text("".join(f"{i + 1} {g}\n" for i, g in enumerate(groups)))
    seen = [n for c, n in enumerate(names) if c not in unseen]
    (root / "trainvalclasses.txt").write_text("\n".join(seen) + "\n")
    (root / "testclasses.txt").write_text("\n".join(n for c, n in enumerate(names) if c in unseen) + "\n")
    (root / "trainclasses1.txt").write_text("\n".join(n for c, n in enumerate(names) if c not in unseen | val) + "\n")
    (root / "valclasses1.txt").write_text("\n".join(names[c] for c in sorted(val)) + "\n")
    if images:
        for i, r in enumerate(rel):
            write_jpeg(cub / "images" / r, seed=i)
    return {"split": split, "labels": labels, "rel": rel, "unseen": sorted(unseen), "val": sorted(val)}


@pytest.fixture
def tiny_cub(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "CUB"
    return root, make_tiny_cub(root)


# ------------------------------------------------------------------------------------------ HTTP server


@dataclass
class FileServer:
    """Serves ``files`` (name → bytes) on 127.0.0.1 with HTTP Range support and test knobs."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    ignore_range: bool = False
    cut_after: int | None = None  # send only this many body bytes of the next response, then drop it
    url: str = ""


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            body = state.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404, "no such file")
                return
            start, status = 0, 200
            match = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if match and not state.ignore_range:
                start = int(match.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            part = body[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(part)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            if state.cut_after is not None:
                self.wfile.write(part[: state.cut_after])
                state.cut_after = None
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(part)

    return Handler


@pytest.fixture
def file_server():
    """A running :class:`FileServer` on an ephemeral port of 127.0.0.1 (stopped after the test)."""
    state = FileServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
