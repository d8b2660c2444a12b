"""Attribute embeddings for ZeroMamba's SLP: files (.npy, restricted pickles), text encoders, hashing, random."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from zsl_bench.errors import UserError
from zsl_bench.models.embeddings import (
    attribute_embeddings,
    attribute_phrase,
    load_attribute_names,
    load_embedding_file,
)


@pytest.fixture(scope="module")
def cub_names_spec(shared_data: Path) -> str:
    """``cub:<folder holding the real CUB attributes.txt>``."""
    return f"cub:{shared_data / 'CUB'}"


def test_cub_names_and_phrases(cub_names_spec: str) -> None:
    names, where = load_attribute_names(cub_names_spec, 312)
    assert len(names) == 312 and "cub" in where and "attributes.txt" in where
    assert attribute_phrase(names[0]) == "bill shape curved up or down"  # has_bill_shape::curved_(up_or_down)
    assert attribute_phrase("sailing/ boating") == "sailing boating"
    with pytest.raises(UserError, match="lists 312 attribute names"):
        load_attribute_names(cub_names_spec, 311)
    with pytest.raises(UserError, match=r"attribute_names='imagenet': unknown dataset 'imagenet'"):
        load_attribute_names("imagenet", 10)
    with pytest.raises(UserError, match=r"unknown dataset 'cbu'; did you mean 'cub'"):
        load_attribute_names("cbu", 312)
    with pytest.raises(UserError, match=r"no attribute names under /nonexistent/CUB .*attributes\.txt"):
        load_attribute_names("cub:/nonexistent/CUB", 312)
    assert len(load_attribute_names("awa2", 85)[0]) == 85 and len(load_attribute_names("sun", 102)[0]) == 102
    # the names of every built-in dataset come from its declaration (aPY, AwA1: built-in tables)
    assert load_attribute_names("apy", 64)[0][:3] == ["2D Boxy", "3D Boxy", "Round"]
    assert load_attribute_names("awa1", 85)[0] == load_attribute_names("awa2", 85)[0]


def test_random_orthogonal_needs_no_names() -> None:
    emb = attribute_embeddings("random", 13, 32)
    assert emb.vectors.shape == (13, 32) and emb.source == "random orthogonal (d=32)"
    torch.testing.assert_close(emb.vectors @ emb.vectors.t(), torch.eye(13), atol=1e-5, rtol=0)
    torch.testing.assert_close(attribute_embeddings("random", 13, 32).vectors, emb.vectors)  # fixed seed
    auto = attribute_embeddings(None, 13, 32)  # no names: auto falls back to random
    assert auto.source.startswith("random orthogonal")


def test_hashed_bag_of_words_on_cub(cub_names_spec: str) -> None:
    emb = attribute_embeddings("hash", 312, 300, names_spec=cub_names_spec)
    assert emb.vectors.shape == (312, 300) and emb.source.startswith("hash bag-of-words (d=300) of cub names")
    again = attribute_embeddings("auto", 312, 300, names_spec=cub_names_spec)  # auto with names = hash
    torch.testing.assert_close(again.vectors, emb.vectors)  # deterministic
    names, _ = load_attribute_names(cub_names_spec, 312)
    groups = [n.split("::")[0] for n in names]
    words = [set(attribute_phrase(n).split()) - {"or", "and"} for n in names]
    unit = torch.nn.functional.normalize(emb.vectors, dim=1)
    cos = unit @ unit.t()
    same = torch.tensor([[a == b for b in groups] for a in groups]) & ~torch.eye(312, dtype=torch.bool)
    disjoint = torch.tensor([[not (a & b) for b in words] for a in words])
    # shared group words ("bill shape", "wing color") make the vectors of a group similar; names without a common
    # word are nearly orthogonal
    assert cos[same].mean() > 0.4 and cos[disjoint].abs().mean() < 0.1, (cos[same].mean(), cos[disjoint].abs().mean())
    i, j = names.index("has_wing_color::blue"), names.index("has_upperparts_color::blue")
    k = names.index("has_bill_shape::dagger")
    assert cos[i, j] > cos[i, k] + 0.2  # "color blue" shared


def test_names_required_and_bad_specs() -> None:
    with pytest.raises(UserError, match="needs the attribute names"):
        attribute_embeddings("hash", 13, 8)
    with pytest.raises(UserError, match="needs the attribute names"):
        attribute_embeddings("hf:some/model", 13, 8)
    with pytest.raises(UserError, match="is not understood"):
        attribute_embeddings("word2vec", 13, 8)
    with pytest.raises(UserError, match="hf: needs a hub id"):
        attribute_embeddings("hf:", 13, 8, names_spec="synth")
    with pytest.raises(UserError, match="no attribute names under /nonexistent"):
        attribute_embeddings("hash", 312, 8, names_spec="cub:/nonexistent")


def test_auto_without_names_is_an_error_unless_random_is_chosen() -> None:
    """auto with a named dataset whose names cannot be read: one line saying how to opt into random vectors (it
    used to fall back silently); with no dataset named at all, auto stays random."""
    for names_spec, needle in (("cub:/nonexistent", "no attribute names under"), ("mydata", "unknown dataset")):
        with pytest.raises(UserError) as exc:
            attribute_embeddings("auto", 312, 8, names_spec=names_spec)
        message = str(exc.value)
        assert needle in message and "model.options.attribute_embeddings=random" in message and "\n" not in message
    assert attribute_embeddings("random", 312, 8).source == "random orthogonal (d=8)"  # the opt-in
    assert attribute_embeddings("auto", 312, 8, names_spec=None).source == "random orthogonal (d=8)"


def test_npy_file(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).standard_normal((13, 7)).astype(np.float64)
    np.save(tmp_path / "w2v.npy", vectors)
    emb = attribute_embeddings(str(tmp_path / "w2v.npy"), 13, 300)  # the file's width wins over the default d
    assert emb.vectors.dtype == torch.float32 and emb.vectors.shape == (13, 7)
    torch.testing.assert_close(emb.vectors, torch.from_numpy(vectors).float())
    assert emb.source.startswith(f"file {tmp_path / 'w2v.npy'} (sha256 ")
    with pytest.raises(UserError, match=r"shape \[13, 7\]; expected \[12, d\]"):
        load_embedding_file(tmp_path / "w2v.npy", 12)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="cannot read attribute embeddings"):  # allow_pickle=False refuses it
        load_embedding_file(tmp_path / "obj.npy", 1)
    np.save(tmp_path / "nan.npy", np.full((2, 3), np.nan))
    with pytest.raises(UserError, match="NaN"):
        load_embedding_file(tmp_path / "nan.npy", 2)
    with pytest.raises(UserError, match="not found"):
        attribute_embeddings(str(tmp_path / "missing.npy"), 13, 8)
    (tmp_path / "w2v.txt").write_text("1 2 3")
    with pytest.raises(UserError, match=r"use a \.npy file"):
        load_embedding_file(tmp_path / "w2v.txt", 1)


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(self.target),))

    target = ""


def test_pickle_files_are_restricted(tmp_path: Path) -> None:
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        (tmp_path / "arr.pkl").write_bytes(pickle.dumps(vectors, protocol=protocol))  # the official files' format
        torch.testing.assert_close(load_embedding_file(tmp_path / "arr.pkl", 3), torch.from_numpy(vectors))
    legacy = pickle.dumps(vectors, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (tmp_path / "numpy1.pkl").write_bytes(legacy)  # written by numpy 1.x, as the official w2v files were
    torch.testing.assert_close(load_embedding_file(tmp_path / "numpy1.pkl", 3), torch.from_numpy(vectors))
    (tmp_path / "rows.pickle").write_bytes(pickle.dumps(vectors.tolist()))
    torch.testing.assert_close(load_embedding_file(tmp_path / "rows.pickle", 3), torch.from_numpy(vectors))
    evil = _Evil()
    evil.target = str(tmp_path / "pwned")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(evil))
    with pytest.raises(UserError, match="refusing to load"):
        load_embedding_file(tmp_path / "evil.pkl", 3)
    assert not (tmp_path / "pwned").exists()  # nothing was executed


def _tiny_bert(directory: Path, phrases: list[str]) -> Path:
    """A random 1-layer BERT (hidden 32) and a WordPiece tokenizer over the phrases' words, saved locally."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for p in phrases for w in p.split()})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tokenizer = BertTokenizerFast(vocab=vocab)
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    return directory


def test_text_encoder_on_cub_names(cub_names_spec: str, tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    names, _ = load_attribute_names(cub_names_spec, 312)
    phrases = [attribute_phrase(n) for n in names]
    bert = _tiny_bert(tmp_path / "bert", phrases)
    emb = attribute_embeddings(f"hf:{bert}", 312, 300, names_spec=cub_names_spec)
    assert emb.vectors.shape == (312, 32)  # the encoder's width
    assert emb.source == f"hf:{bert} mean-pooled last hidden state of cub names (attributes.txt)"
    tokenizer, model = AutoTokenizer.from_pretrained(bert), AutoModel.from_pretrained(bert).eval()
    for i in (0, 311):  # one attribute alone (no padding) = the plain mean over its tokens
        enc = tokenizer([phrases[i]], return_tensors="pt")
        assert (enc["input_ids"] != tokenizer.unk_token_id).all()  # the vocabulary covers the names
        with torch.no_grad():
            expected = model(**enc).last_hidden_state[0].mean(0)
        torch.testing.assert_close(emb.vectors[i], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(emb.vectors[0], emb.vectors[1])


@pytest.mark.integration
def test_offline_text_encoder_is_one_line(cli, synth_root: Path, tmp_path: Path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}  # an empty cache, no network
    args = ["train", "--model", "zeromamba_test", "--dataset", "synth", "--data-root", str(synth_root)]
    options = ["--set", "model.options.attribute_embeddings=hf:org/no-such-encoder"]
    options += ["--set", "model.options.attribute_names=synth", "--set", "train.epochs=1"]
    code, _, err = cli(*args, *options, "--out", str(tmp_path / "run"), env=env, timeout=300)
    assert code == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "org/no-such-encoder" in lines[0] and "attribute_embeddings=hf:DIR" in lines[0]
