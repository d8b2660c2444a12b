"""Attribute embeddings: one d-dimensional vector per attribute, the queries of ZeroMamba's SLP.

The official model reads 300-d word2vec vectors (``data/w2v/{DS}_attribute.pkl``, the sum of the GoogleNews
vectors of each attribute name's words). Those files are not public, so :func:`attribute_embeddings` offers these
sources, named by the model option ``attribute_embeddings``:

* ``PATH.npy`` (preferred; read with ``allow_pickle=False``) or ``PATH.pkl`` / ``PATH.pickle``: a user file holding
  an ``[A, d]`` float array, e.g. the official w2v files if you have them. Pickles are read with a restricted
  unpickler that only rebuilds numpy arrays and plain lists, but pickle is still a format for **trusted files
  only**: prefer ``.npy``.
* ``hf:<hub id or local directory>``: a transformers text encoder run on the attribute names; the embedding is the
  mean of the last hidden state over the name's tokens (padding masked). Offline, a hub id works only if it is in
  the Hugging Face cache; otherwise pass a ``save_pretrained`` directory.
* ``hash``: a hashed bag of words. Every word of an attribute name gets a fixed pseudo-random Gaussian vector
  seeded by the word's BLAKE2 hash, and the name's vector is their sum — the same construction as the official
  word2vec sums, with random word vectors in place of learnt ones. Attributes that share words (CUB's
  ``bill shape`` group, ``… color`` values) get correlated vectors, which is the structure the official vectors
  give the SLP; unrelated names are nearly orthogonal. Deterministic across machines and runs, no download.
* ``random``: ``[A, d]`` random orthogonal rows (fixed seed). Needs no names; carries no semantics.
* ``auto`` (default): ``hash`` of the attribute names; ``random`` only when no dataset is named (no
  ``attribute_names``). Names that are named but cannot be read are an error (one line): silently random
  vectors would carry no semantics; opt into them with ``attribute_embeddings=random``.

Attribute names come from the ``attribute_names`` option, ``<dataset>`` or ``<dataset>:<root>`` (``cub:data/CUB``,
``awa2``, ``apy``, ``synth``, any registered dataset), read with the attribute rule of the dataset's declaration
(:mod:`zsl_bench.data.declare`; ``root`` defaults to the dataset's default folder ``data/<FOLDER>``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zsl_bench.errors import UserError

log = logging.getLogger(__name__)

__all__ = [
    "AttributeEmbeddings",
    "attribute_embeddings",
    "attribute_phrase",
    "hashed_embeddings",
    "load_attribute_names",
    "load_embedding_file",
    "random_embeddings",
    "text_encoder_embeddings",
]

SOURCES = ("auto", "hash", "random")  # the named (non-file, non-hf) sources
_STOPWORDS = frozenset({"has", "a", "an", "the", "of", "or", "and", "in", "on", "to", "is", "be", "being"})
_PICKLE_SUFFIXES = (".pkl", ".pickle")


@dataclass(frozen=True)
class AttributeEmbeddings:
    """Attribute vectors and where they came from.

    Attributes:
        vectors: ``[A, d]`` float32 (not normalised).
        source: a one-line description for the run's config/summary, e.g. ``hash(d=300) of cub names``.
    """

    vectors: torch.Tensor
    source: str


# ------------------------------------------------------------------------------------------------ names


def load_attribute_names(spec: str, num_attributes: int) -> tuple[list[str], str]:
    """The attribute names named by ``spec`` = ``<dataset>`` or ``<dataset>:<root>`` → (names [A], description).

    ``<dataset>`` is looked up in the dataset registry and its declared attribute rule reads the names
    (``root`` defaults to the dataset's default folder).

    Raises:
        UserError: unknown dataset, no names there (CUB without ``attributes.txt``), or not ``num_attributes``.
    """
    from zsl_bench.data.declare import DATASETS, dataset_spec
    from zsl_bench.registry import unknown_name_message

    dataset, _, root_text = spec.partition(":")
    dataset = dataset.strip().lower()
    if dataset not in DATASETS:
        raise UserError(
            f"attribute_names={spec!r}: {unknown_name_message('dataset', dataset, DATASETS.names())} (form "
            "'<dataset>' or '<dataset>:<root>', e.g. 'cub:data/CUB')"
        )
    declared = dataset_spec(dataset)
    root = Path(root_text).expanduser() if root_text.strip() else declared.default_root()
    info = declared.read_attributes(root, num_attributes)
    if info is None:
        raise UserError(
            f"attribute_names={spec!r}: no attribute names under {root} (dataset {dataset} reads them from "
            f"{declared.attribute_source}); put them there or give their folder as attribute_names={dataset}:/path"
        )
    return info.names, f"{dataset} names ({info.source})"


def attribute_phrase(name: str) -> str:
    """A readable phrase of a raw attribute name: ``has_bill_shape::curved_(up_or_down)`` →
    ``bill shape curved up or down``; ``sailing/ boating`` → ``sailing boating``."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    if words and words[0] == "has":
        words = words[1:]
    return " ".join(words)


# ---------------------------------------------------------------------------------------------- sources


def random_embeddings(num_attributes: int, dim: int, seed: int = 0) -> torch.Tensor:
    """``[A, d]`` random orthogonal rows (orthonormal columns when A > d) from a fixed seed."""
    out = torch.empty(num_attributes, dim)
    torch.nn.init.orthogonal_(out, generator=torch.Generator().manual_seed(seed))
    return out


def _word_vector(word: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(dim)


def hashed_embeddings(names: list[str], dim: int) -> torch.Tensor:
    """``[A, d]``: for each name, the sum of unit-variance Gaussian vectors seeded by the hash of each content word
    of :func:`attribute_phrase` (stop words such as ``has``/``or`` dropped; a name of stop words only keeps them)."""
    rows = []
    for name in names:
        words = attribute_phrase(name).split()
        content = [w for w in words if w not in _STOPWORDS] or words or [name]
        rows.append(np.sum([_word_vector(w, dim) for w in content], axis=0))
    return torch.from_numpy(np.stack(rows)).float()


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays (and plain lists/tuples of numbers); any other global is refused."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),  # Python 2 pickles of numpy arrays store the raw bytes through it
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays and lists)")
        return super().find_class(module.replace("numpy.core.", "numpy._core.", 1), name)


def load_embedding_file(path: str | Path, num_attributes: int) -> torch.Tensor:
    """``[A, d]`` float32 from an ``.npy`` file (no pickles inside) or a ``.pkl``/``.pickle`` holding a numpy array
    or a list of rows (restricted unpickler; trusted files only).

    Raises:
        UserError: missing file, other suffix, unreadable content, not a finite 2-D array with ``num_attributes`` rows.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"attribute_embeddings file not found: {path} (give an existing .npy or .pkl file)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in _PICKLE_SUFFIXES:
            array = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
        else:
            raise UserError(f"attribute_embeddings file {path}: use a .npy file (or a trusted .pkl)")
        array = np.asarray(array, dtype=np.float32)
    except UserError:
        raise
    except Exception as exc:  # corrupt file, object arrays, refused globals, ragged lists
        first = str(exc).strip().splitlines()[:1]
        why = f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
        raise UserError(f"cannot read attribute embeddings from {path} ({why}); save an [A, d] float array") from None
    if array.ndim != 2 or array.shape[0] != num_attributes or array.shape[1] < 1:
        raise UserError(
            f"attribute embeddings in {path} have shape {list(array.shape)}; expected [{num_attributes}, d] "
            "(one row per attribute of the dataset, in att_splits.mat column order)"
        )
    if not np.isfinite(array).all():
        raise UserError(f"attribute embeddings in {path} contain NaN or inf values")
    return torch.from_numpy(array)


def text_encoder_embeddings(model_id: str, names: list[str], batch_size: int = 64) -> torch.Tensor:
    """``[A, hidden]``: a transformers encoder's last hidden state, mean-pooled over each attribute phrase's tokens.

    ``model_id`` is a local ``save_pretrained`` directory (tokenizer + model) or a hub id (online, or in the cache).

    Raises:
        UserError: the tokenizer/model cannot be loaded (one line naming it and how to provide it).
    """
    from zsl_bench.registry import import_names

    try:
        auto_model, auto_tokenizer = import_names("transformers", "AutoModel", "AutoTokenizer")
    except ImportError:
        raise UserError(
            "attribute_embeddings=hf:... needs the transformers package (pip install transformers)"
        ) from None
    where = Path(model_id).expanduser()
    source = str(where) if where.is_dir() else model_id
    try:
        tokenizer = auto_tokenizer.from_pretrained(source)
        model = auto_model.from_pretrained(source, dtype=torch.float32).eval()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        lines = str(exc).strip().splitlines()
        why = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise UserError(
            f"cannot load text encoder {model_id!r} for attribute embeddings ({why[:200]}); provide it as a local "
            f"directory (`hf download {model_id} --local-dir DIR` on a machine online, then "
            "attribute_embeddings=hf:DIR), run online, or use attribute_embeddings=hash"
        ) from None
    phrases = [attribute_phrase(n) or n for n in names]
    rows = []
    with torch.no_grad():
        for start in range(0, len(phrases), batch_size):
            enc = tokenizer(phrases[start : start + batch_size], padding=True, truncation=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state  # [b, T, H]
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [b, T, 1]
            rows.append((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0))
    return torch.cat(rows).float()


# ---------------------------------------------------------------------------------------------- dispatch


def attribute_embeddings(
    spec: str | None,
    num_attributes: int,
    dim: int,
    names_spec: str | None = None,
    seed: int = 0,
) -> AttributeEmbeddings:
    """The ``[A, d]`` attribute vectors named by ``spec`` (see the module docstring) with a source description.

    Args:
        spec: ``None``/``auto``, ``hash``, ``random``, a ``.npy``/``.pkl`` path, or ``hf:<id or dir>``.
        num_attributes: A.
        dim: d for the generated sources (``hash``, ``random``); files and encoders bring their own width.
        names_spec: ``<dataset>[:<root>]`` for the sources that need attribute names (``hash``, ``hf:``).
        seed: seed of ``random``.

    Raises:
        UserError: bad spec, a source that needs names without ``names_spec``, or what the source raises.
    """
    text = (spec or "auto").strip()
    kind = text.lower()
    if kind == "random":
        return AttributeEmbeddings(random_embeddings(num_attributes, dim, seed), f"random orthogonal (d={dim})")
    if kind.startswith("hf:"):
        model_id = text[3:].strip()
        if not model_id:
            raise UserError("attribute_embeddings=hf: needs a hub id or directory, e.g. hf:bert-base-uncased")
        names, where = _names(names_spec, num_attributes, "hf:")
        vectors = text_encoder_embeddings(model_id, names)
        return AttributeEmbeddings(vectors, f"hf:{model_id} mean-pooled last hidden state of {where}")
    if kind in ("auto", "hash"):
        if names_spec is None and kind == "auto":
            log.info("attribute_embeddings=auto without attribute_names: random orthogonal vectors")
            return AttributeEmbeddings(random_embeddings(num_attributes, dim, seed), f"random orthogonal (d={dim})")
        try:
            names, where = _names(names_spec, num_attributes, "hash")
        except UserError as exc:
            if kind == "hash":
                raise
            raise UserError(
                f"attribute_embeddings=auto: {exc}; to train with random orthogonal attribute vectors instead, "
                "set model.options.attribute_embeddings=random"
            ) from None
        return AttributeEmbeddings(hashed_embeddings(names, dim), f"hash bag-of-words (d={dim}) of {where}")
    if Path(text).suffix.lower() in (".npy", *_PICKLE_SUFFIXES):
        vectors = load_embedding_file(text, num_attributes)
        digest = hashlib.sha256(Path(text).expanduser().read_bytes()).hexdigest()[:12]
        return AttributeEmbeddings(vectors, f"file {text} (sha256 {digest})")
    raise UserError(
        f"attribute_embeddings={spec!r} is not understood; use a .npy/.pkl file path, hf:<hub id or dir>, "
        f"or one of {', '.join(SOURCES)}"
    )


def _names(names_spec: str | None, num_attributes: int, what: str) -> tuple[list[str], str]:
    if not names_spec:
        raise UserError(
            f"attribute_embeddings={what}... needs the attribute names: set model.options.attribute_names to "
            "<dataset> or <dataset>:<root> (e.g. cub:data/CUB)"
        )
    return load_attribute_names(names_spec, num_attributes)
