"""``zsl-bench leaderboard --format html``: the static site's contract, checked on its HTML without a browser.

The numbers of every table cell against ``--format json``, reported rows and their sources, row pages with their
sections and the plots they show, missing data said, skipped runs listed, nothing fetched from the network, the
``--out`` refusals, the all-or-nothing write, and a site built from real ``zsl-bench train`` runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from zsl_bench.cli import main
from zsl_bench.report import plots
from zsl_bench.report.leaderboard import build, render
from zsl_bench.report.scores import TEST_SCORES, load_test_scores, seen_unseen_curve
from zsl_bench.report.site import write_site
from zsl_bench.report.site.build import SITE_MARK
from zsl_bench.report.site.index_page import KEYS
from zsl_bench.report.site.row_data import baseline

from .conftest import REFERENCE_YAML, build_tree, write_run

SECTIONS = ("config", "seeds", "curves", "seen-unseen", "search")
VOID = {"img", "meta", "link", "br", "input", "hr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def all(self, tag: str, **want: str) -> list[Node]:
        """Descendants with ``tag`` whose attributes (``data_key`` for ``data-key``) have the given values."""
        found = []
        for child in self.children:
            if child.tag == tag and all(child.attrs.get(k.replace("_", "-")) == v for k, v in want.items()):
                found.append(child)
            found += child.all(tag, **want)
        return found

    def one(self, tag: str, **want: str) -> Node:
        found = self.all(tag, **want)
        assert len(found) == 1, (tag, want, len(found))
        return found[0]

    def content(self) -> str:
        return self.text + "".join(c.content() for c in self.children)


class TreeParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(Node("#text", {}, text=data))


def parse(path: Path) -> Node:
    parser = TreeParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.stack == [parser.root], "unclosed elements"
    return parser.root


def write_scores(run: Path, *, seed: int, epoch: int = 4) -> None:
    """A ``test_scores.npz`` as the engine writes it: 5 classes (3 seen), 10 test images each."""
    rng = np.random.default_rng(seed)
    labels = np.arange(50) // 10
    scores = (np.eye(5)[labels] * 1.5 + rng.normal(size=(50, 5))).astype(np.float32)
    arrays = {"seen": np.arange(3), "unseen": np.arange(3, 5), "epoch": epoch, "gamma": 0.1}
    np.savez_compressed(run / TEST_SCORES, scores=scores, y_true=labels, **arrays)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(results, reference, site): the conftest tree (with scores in two of cub's final runs), built once."""
    root = tmp_path_factory.mktemp("site")
    results = build_tree(root / "results")
    for seed in (0, 1):
        write_scores(results / "cubsweep" / f"final-1-seed{seed}", seed=seed)
    reference = root / "reference"
    reference.mkdir()
    (reference / "papers.yaml").write_text(REFERENCE_YAML)
    out = root / "site"
    args = ["leaderboard", "--results", str(results), "--reference", str(reference), "--format", "html"]
    assert main([*args, "--out", str(out)]) == 0
    return results, reference, out


def json_rows(results: Path, reference: Path) -> list[dict]:
    return json.loads(render(build(results, reference), "json"))


def test_every_json_row_is_a_table_row_with_its_numbers(site):
    results, reference, out = site
    rows = json_rows(results, reference)
    assert json.loads((out / "board.json").read_text()) == rows
    index = parse(out / "index.html")
    assert len(index.all("tr", **{"class": "row"})) == len(rows) == 8
    for row in rows:
        table = index.one(
            "table", **{"class": "board", "data_dataset": row["dataset"], "data_protocol": row["protocol"]}
        )
        assert [th.attrs["data-key"] for th in table.all("th") if "data-key" in th.attrs] == list(KEYS)
        assert table.one("caption").content().strip()
        line = table.one("tr", data_model=row["model"], data_accuracy=row["accuracy"], **{"class": "row"})
        for key in KEYS:
            cell = line.one("td", data_key=key)
            value = row[key]
            expected = "" if value is None else value if isinstance(value, str) else json.dumps(value)
            assert cell.attrs["data-value"] == expected, (row["model"], key)
        assert line.one("a", **{"class": "row-link"}).attrs["href"].startswith("rows/")
    cub = index.one("tr", data_model="resnet_test", data_protocol="val", **{"class": "row"})
    assert cub.one("td", data_key="czsl").content() == "62.0 ± 2.0"  # the markdown's display
    assert cub.one("td", data_key="h").content() == "52.5 ± 1.6"
    assert "search stage" in index.one("tr", data_model="resnet_test", data_protocol="search-val").content()


def test_reported_rows_are_marked_with_source_and_metric(site):
    _, _, out = site
    index = parse(out / "index.html")
    cub_val = index.one("table", data_dataset="cub", data_protocol="val")
    paper = cub_val.one("tr", **{"class": "reported"})
    assert "reported" in paper.one("td", data_key="model").content()
    assert paper.one("td", data_key="h").attrs["data-value"] == "64.9"
    assert "a test table" in paper.one("td", data_key="source").content() and not paper.all("a")
    awa2 = index.one("table", data_dataset="awa2", data_protocol="test")
    sources = [td.content() for td in awa2.all("td", data_key="source")]
    assert any("per-sample" in s and "its script passes --all" in s for s in sources)
    assert any("another table" in s for s in sources)
    assert not index.one("section", id="ds-synth").all("tr", **{"class": "reported"})  # no reference for synth


def test_row_pages_have_their_sections_and_plots(site):
    results, reference, out = site
    seeds = {(r["dataset"], r["model"], r["protocol"]): r["n_seeds"] for r in json_rows(results, reference)}
    pages = 0
    for table in parse(out / "index.html").all("table", **{"class": "board"}):
        for line in table.all("tr", **{"class": "row"}):
            page_path = out / line.one("a", **{"class": "row-link"}).attrs["href"]
            page = parse(page_path)
            assert any(a.attrs.get("href") == "../index.html" for a in page.all("a"))
            for ident in SECTIONS:
                section = page.one("section", id=ident)
                shown = section.all("img", **{"class": "plot"})
                assert shown or section.all("p", **{"class": "missing"}) or ident in ("config", "seeds"), ident
                for img in shown:
                    png = page_path.parent / img.attrs["src"]
                    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
            key = (table.attrs["data-dataset"], line.attrs["data-model"], line.attrs["data-protocol"])
            assert len(page.one("section", id="seeds").all("tr", **{"class": "seed-run"})) == seeds[key]
            pages += 1
    assert pages == len(seeds) == 8


def page_of(out: Path, slug: str) -> Node:
    return parse(out / "rows" / f"{slug}.html")


def test_row_page_content_and_missing_data(site):
    results, _, out = site
    cub = page_of(out, "cub--resnet_test--val--per_class")
    config = cub.one("section", id="config").content()
    assert "does not record the preset" in config and "train.epochs" in config
    seeds = cub.one("section", id="seeds")
    assert [r.all("td")[0].content() for r in seeds.all("tr", **{"class": "seed-run"})] == [
        f"cubsweep/final-1-seed{s}" for s in range(3)
    ]
    assert "not recorded" in seeds.content() and "cuda:0" in seeds.content()  # the tree records no git sha
    unseen = cub.one("section", id="seen-unseen")
    ts, _ = load_test_scores(results / "cubsweep" / "final-1-seed0")
    area = seen_unseen_curve("seed 0", ts).area
    assert unseen.one("img", **{"class": "plot"}) and f"seed 0 {100 * area:.1f}" in unseen.content()
    search = cub.one("section", id="search")
    assert [r.all("td")[0].content() for r in search.all("tr", **{"class": "chosen"})] == ["t1"]
    assert "optim.lr" in search.content()
    # the seen-unseen and learning curves of the test row are the same files' bytes
    twin = out / "rows" / "cub--resnet_test--test--per_class" / "curves.png"
    assert twin.read_bytes() == (out / "rows" / "cub--resnet_test--val--per_class" / "curves.png").read_bytes()

    awa2 = page_of(out, "awa2--vit_test--val--per_class")
    assert "No search-stage trial" in awa2.one("section", id="search").one("p", **{"class": "missing"}).content()
    synth = page_of(out, "synth--resnet_test--search-val--per_class")
    why = synth.one("section", id="seen-unseen").one("p", **{"class": "missing"}).content()
    assert TEST_SCORES in why


def test_skipped_runs_are_listed(site):
    _, _, out = site
    skipped = parse(out / "index.html").one("section", id="skipped")
    text = skipped.content()
    assert "skipped 4 run(s) for scores: 1 failed, 1 incomplete (no done), 2 unreadable" in text
    assert all(f"cubsweep/{t}" in text for t in ("t4", "t5", "t6")) and "junk" in text


def test_nothing_is_fetched_from_a_url(site):
    _, _, out = site
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 9
    for path in pages:
        for node in _every(parse(path)):
            for name in ("src", "href"):
                target = node.attrs.get(name, "")
                assert not re.match(r"^\s*(https?:)?//", target, re.IGNORECASE), (path, target)
                if target and not target.startswith(("#", "data:")):
                    assert (path.parent / target.split("#")[0]).exists(), (path, target)


def _every(node: Node) -> list[Node]:
    return [c for child in node.children for c in (child, *_every(child))]


def test_out_that_is_a_file_is_one_line_exit_2(cli, tmp_path):
    build_tree(tmp_path / "results")
    (tmp_path / "taken.html").write_text("mine")
    code, out, err = cli("leaderboard", "--results", "results", "--format", "html", "--out", "taken.html", cwd=tmp_path)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "--out taken.html: is a file" in err and (tmp_path / "taken.html").read_text() == "mine"


def test_rewrite_replaces_a_site_all_or_nothing(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    write_run(results / "sweep", "a", dataset="synth", model="resnet_test")
    out = tmp_path / "site"
    board = build(results)
    first = write_site(board, out, results)
    assert first[0] == out / "index.html" and (out / SITE_MARK).exists() and all(p.exists() for p in first)
    (out / "index.html").write_text("the earlier site")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "plot_learning_curves", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_site(board, out, results)
    assert (out / "index.html").read_text() == "the earlier site"  # untouched, and no temp folder left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "site"]
    monkeypatch.undo()
    write_site(board, out, results)
    assert "the earlier site" not in (out / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "site"]

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["leaderboard", "--results", str(results), "--format", "html", "--out", str(tmp_path / "mine")]) == 2
    assert "not a zsl-bench site" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_recorded_preset_is_the_baseline():
    tree, which = baseline(
        {"model": {"name": "resnet_test"}, "data": {"name": "synth"}, "meta": {"preset": "quickstart"}}
    )
    assert which == "Compared with the preset it started from, quickstart." and tree["optim"]["lr"] == 3e-3
    tree, which = baseline({"model": {"name": "resnet_test"}, "data": {"name": "cub"}})
    assert "does not record the preset" in which and tree["train"]["epochs"] == 8


def test_site_of_real_training_runs(tmp_path, monkeypatch, capsys):
    from zsl_bench.data.synth import SynthSpec, generate

    monkeypatch.chdir(tmp_path)
    generate(tmp_path / "synth", SynthSpec(seed=1, image_size=32, images_per_class=12))  # small: a fast epoch
    for seed in (0, 1):
        sets = ["train.epochs=1", "model.options.width=8", f"train.seed={seed}"]
        args = ["train", "--model", "resnet_test", "--dataset", "synth", "--data-root", "synth"]
        assert main([*args, *[f"--set={s}" for s in sets], "--out", f"results/runs/seed{seed}"]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--results", "results", "--format", "html"]) == 0
    assert capsys.readouterr().out.strip() == str(Path("results") / "site" / "index.html")
    out = tmp_path / "results" / "site"
    (row,) = json.loads((out / "board.json").read_text())[:1]
    assert (row["dataset"], row["model"], row["protocol"], row["n_seeds"]) == ("synth", "resnet_test", "search-val", 2)
    line = parse(out / "index.html").one("tr", data_protocol="search-val", **{"class": "row"})
    assert line.one("td", data_key="h").attrs["data-value"] == json.dumps(row["h"])
    page = parse(out / line.one("a").attrs["href"])
    curves = page.one("section", id="curves")
    assert curves.one("img", **{"class": "plot"}) and not curves.all("p", **{"class": "missing"})
    unseen = page.one("section", id="seen-unseen")
    ts, _ = load_test_scores(tmp_path / "results" / "runs" / "seed1")
    assert f"seed 1 {100 * seen_unseen_curve('', ts).area:.1f}" in unseen.content()
    seeds = page.one("section", id="seeds").all("tr", **{"class": "seed-run"})
    config = yaml.safe_load((tmp_path / "results" / "runs" / "seed0" / "config.yaml").read_text())
    sha = config["meta"]["git_sha"] or "not recorded"
    assert len(seeds) == 2 and sha in seeds[0].content() and "torch" in seeds[0].content()
    assert page.one("section", id="search").one("img", **{"class": "plot"})


def test_the_config_diff_shows_a_null_setting_as_unset():
    from zsl_bench.report.site.row_page import _setting

    assert (_setting(None), _setting(0.0058631), _setting(64)) == ("null (unset)", "0.005863", "64")
