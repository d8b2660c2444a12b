"""``data fetch`` end to end against archives served from 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from zsl_bench.cli import main
from zsl_bench.data.fetch import fetch
from zsl_bench.data.fetch_archive import unpack
from zsl_bench.data.fetch_checksums import parse_sha256_args, read_manifest
from zsl_bench.data.fetch_install import STATE_DIR
from zsl_bench.data.fetch_targets import XLSA17, fetch_target
from zsl_bench.errors import UserError

from .conftest import TINY_CUB, make_tiny_cub


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tar_gz(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in sorted(entries.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in sorted(entries.items()):
            zf.writestr(name, data)
    return buf.getvalue()


def tree(root: Path, prefix: str = "") -> dict[str, bytes]:
    return {prefix + p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A tiny CUB as the two real archives would deliver it: CUB_200_2011.tgz and xlsa17.zip."""
    src = tmp_path_factory.mktemp("src") / "CUB"
    make_tiny_cub(src)
    cub = tree(src / "CUB_200_2011", "CUB_200_2011/")
    cub["attributes.txt"] = (src / "attributes.txt").read_bytes()
    split_files = ("att_splits.mat", "trainvalclasses.txt", "testclasses.txt", "trainclasses1.txt", "valclasses1.txt")
    xlsa = {f"xlsa17/data/CUB/{f}": (src / f).read_bytes() for f in split_files}
    xlsa["xlsa17/README.txt"] = b"proposed splits\n"
    return {"CUB_200_2011.tgz": tar_gz(cub), "xlsa17.zip": zip_bytes(xlsa)}


@pytest.fixture
def server(file_server, archives):
    file_server.files.update(archives)
    return file_server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_fetch_xlsa17_and_cub_then_inspect_and_rerun(server, archives, tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    code, out, err = run(capsys, "data", "fetch", "xlsa17", "--root", str(data), "--mirror", server.url)
    assert code == 0, err
    assert json.loads(out)["archives"]["xlsa17.zip"] == {"sha256": sha(archives["xlsa17.zip"]), "checked": "first use"}
    assert f"no official sha256 is known for xlsa17.zip; got {sha(archives['xlsa17.zip'])}" in err
    assert (data / "CUB" / "att_splits.mat").is_file() and not (data / "README.txt").exists()

    cub_sha = sha(archives["CUB_200_2011.tgz"])
    argv = ["data", "fetch", "cub", "--root", str(data / "CUB"), "--mirror", server.url, "--sha256", cub_sha]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "installed" and result["archives"]["CUB_200_2011.tgz"]["checked"] == "given"
    assert sorted(result["placed"]) == ["CUB_200_2011", "attributes.txt"]
    assert not (data / "CUB" / STATE_DIR / "downloads" / "CUB_200_2011.tgz").exists()  # archive removed

    code, out, err = run(capsys, "data", "inspect", "--dataset", TINY_CUB, "--root", str(data / "CUB"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["classes"], report["images_listed"], report["images_missing"]) == (6, 30, 0)

    n_requests = len(server.requests)
    for again in (argv, ["data", "fetch", "xlsa17", "--root", str(data), "--mirror", server.url]):
        code, out, err = run(capsys, *again)
        assert code == 0 and json.loads(out)["status"] == "already installed", err
    assert len(server.requests) == n_requests  # idempotent: no network at all


def test_resume_a_partial_download(server, archives, tmp_path: Path, capsys) -> None:
    body = archives["CUB_200_2011.tgz"]
    part = tmp_path / STATE_DIR / "downloads" / "CUB_200_2011.tgz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[: len(body) // 2])
    code, _, err = run(
        capsys, "data", "fetch", "cub", "--root", str(tmp_path), "--mirror", server.url, "--sha256", sha(body)
    )
    assert code == 0, err
    assert server.requests == [("/CUB_200_2011.tgz", f"bytes={len(body) // 2}-")]
    assert (tmp_path / "CUB_200_2011" / "images.txt").is_file()


def test_interrupted_download_resumes_on_the_next_run(server, archives, tmp_path: Path, capsys) -> None:
    body = archives["CUB_200_2011.tgz"]
    argv = ["data", "fetch", "cub", "--root", str(tmp_path), "--mirror", server.url, "--sha256", sha(body)]
    server.cut_after = 1000
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert f"stopped at 1000 of {len(body)} bytes" in one_line(err) and "again to resume" in err
    part = tmp_path / STATE_DIR / "downloads" / "CUB_200_2011.tgz.part"
    assert part.stat().st_size == 1000 and not (tmp_path / "CUB_200_2011").exists()
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert server.requests[-1] == ("/CUB_200_2011.tgz", "bytes=1000-")
    assert not part.exists() and (tmp_path / "CUB_200_2011" / "images").is_dir()


def test_server_without_range_support_restarts(server, archives, tmp_path: Path, capsys) -> None:
    body = archives["CUB_200_2011.tgz"]
    part = tmp_path / STATE_DIR / "downloads" / "CUB_200_2011.tgz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 100)  # not even a prefix of the file: a restart must not keep it
    server.ignore_range = True
    code, _, err = run(
        capsys, "data", "fetch", "cub", "--root", str(tmp_path), "--mirror", server.url, "--sha256", sha(body)
    )
    assert code == 0, err
    assert server.requests == [("/CUB_200_2011.tgz", "bytes=100-")]


def test_checksum_mismatch_keeps_the_archive_aside(server, archives, tmp_path: Path, capsys) -> None:
    wrong = "0" * 64
    code, out, err = run(
        capsys, "data", "fetch", "cub", "--root", str(tmp_path), "--mirror", server.url, "--sha256", wrong
    )
    line = one_line(err)
    assert code == 2 and out == ""
    assert "CUB_200_2011.tgz" in line and "kept aside" in line and "not unpacked" in line
    aside = tmp_path / STATE_DIR / "downloads" / "CUB_200_2011.tgz.sha256-mismatch"
    assert aside.read_bytes() == archives["CUB_200_2011.tgz"]
    assert not (tmp_path / "CUB_200_2011").exists() and not (tmp_path / "attributes.txt").exists()
    code, out, err = run(capsys, "data", "fetch", "cub", "--root", str(tmp_path), "--mirror", server.url)
    assert code == 2 and "0c685df5597a8b24" in err  # the official checksum is used without --sha256


def test_recorded_checksum_guards_a_refetch(file_server, tmp_path: Path, capsys) -> None:
    awa2 = {"Animals_with_Attributes2/JPEGImages/ant/a.jpg": b"1", "Animals_with_Attributes2/classes.txt": b"ant\n"}
    file_server.files["AwA2-data.zip"] = zip_bytes(awa2)
    argv = ["data", "fetch", "awa2", "--root", str(tmp_path), "--mirror", file_server.url]
    assert run(capsys, *argv)[0] == 0
    assert (tmp_path / "Animals_with_Attributes2" / "JPEGImages" / "ant" / "a.jpg").read_bytes() == b"1"
    state = json.loads((tmp_path / STATE_DIR / "awa2.json").read_text())
    assert state["complete"] and state["archives"]["AwA2-data.zip"]["checked"] == "first use"
    # the folder disappears and the upstream file changes: the recorded checksum catches it
    shutil.rmtree(tmp_path / "Animals_with_Attributes2")
    file_server.files["AwA2-data.zip"] = zip_bytes({**awa2, "Animals_with_Attributes2/classes.txt": b"bee\n"})
    code, _, err = run(capsys, *argv)
    assert code == 2 and "kept aside" in one_line(err)


def test_existing_files_are_never_overwritten(server, archives, tmp_path: Path, capsys) -> None:
    mine = tmp_path / "CUB_200_2011" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("mine")
    body = archives["CUB_200_2011.tgz"]
    code, _, err = run(
        capsys, "data", "fetch", "cub", "--root", str(tmp_path), "--mirror", server.url, "--sha256", sha(body)
    )
    assert code == 2 and "already exists" in one_line(err) and "nothing was changed" in err
    assert mine.read_text() == "mine" and not (tmp_path / "attributes.txt").exists()


def test_layout_already_present_needs_no_network(server, tmp_path: Path, capsys) -> None:
    (tmp_path / "CUB_200_2011" / "images").mkdir(parents=True)
    (tmp_path / "CUB_200_2011" / "images.txt").write_text("")
    code, out, _ = run(capsys, "data", "fetch", "cub", "--root", str(tmp_path), "--mirror", server.url)
    assert code == 0 and json.loads(out)["status"] == "already present" and server.requests == []


def test_http_errors_are_one_line(file_server, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "data", "fetch", "sun", "--root", str(tmp_path), "--mirror", file_server.url)
    assert code == 2 and "HTTP 404" in one_line(err)
    code, _, err = run(capsys, "data", "fetch", "sun", "--root", str(tmp_path), "--mirror", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach" in one_line(err)


def test_unsafe_archives_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(tar_gz({"../evil.txt": b"x"}))
    with pytest.raises(UserError, match="unsafe member path"):
        unpack(bad, tmp_path / "out")
    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w:gz") as tf:
        info = tarfile.TarInfo("images/escape")
        info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
        tf.addfile(info)
    bad.write_bytes(link.getvalue())
    with pytest.raises(UserError, match="is a symbolic link"):
        unpack(bad, tmp_path / "out")
    bad.write_bytes(b"neither zip nor tar")
    with pytest.raises(UserError, match="not a readable zip/tar archive"):
        unpack(bad, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_wrong_archive_content_is_not_installed(file_server, tmp_path: Path, capsys) -> None:
    file_server.files["SUNAttributeDB_Images.tar.gz"] = tar_gz({"pictures/a.jpg": b"1"})
    code, _, err = run(capsys, "data", "fetch", "sun", "--root", str(tmp_path), "--mirror", file_server.url)
    assert code == 2 and "does not contain images" in one_line(err)
    assert not (tmp_path / "pictures").exists()


def test_sha256_arguments_and_manifest(tmp_path: Path) -> None:
    cub = fetch_target("cub")
    digest = "ab" * 32
    assert parse_sha256_args([digest], cub) == {"CUB_200_2011.tgz": digest}
    assert parse_sha256_args([f"CUB_200_2011.tgz={digest.upper()}"], cub) == {"CUB_200_2011.tgz": digest}
    with pytest.raises(UserError, match="not a sha256"):
        parse_sha256_args(["abc"], cub)
    with pytest.raises(UserError, match="not an archive of cub"):
        parse_sha256_args([f"other.zip={digest}"], cub)
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(f"# pinned\n{digest}  CUB_200_2011.tgz\n{'cd' * 32} *xlsa17.zip\n")
    assert read_manifest(manifest, cub) == {"CUB_200_2011.tgz": digest}
    assert read_manifest(manifest, XLSA17) == {"xlsa17.zip": "cd" * 32}
    with pytest.raises(UserError, match="unknown fetch target 'apx'; did you mean 'apy'"):
        fetch("apx", tmp_path)


def test_fetch_subprocess_end_to_end(server, archives, tmp_path: Path, cli) -> None:
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(f"{sha(archives['CUB_200_2011.tgz'])}  CUB_200_2011.tgz\n")
    root = tmp_path / "CUB"
    code, out, err = cli(
        "data", "fetch", "cub", "--root", str(root), "--mirror", server.url, "--manifest", str(manifest)
    )
    assert code == 0, err
    assert json.loads(out)["archives"]["CUB_200_2011.tgz"]["checked"] == "given"
    assert "\r" not in err  # no progress bar when stderr is not a terminal
    assert (root / "CUB_200_2011" / "image_class_labels.txt").is_file()


def test_terminal_progress_bar() -> None:
    from zsl_bench.data.fetch_download import terminal_progress

    stream = io.StringIO()
    show = terminal_progress(stream)
    show("CUB_200_2011.tgz", 0, 2**21)
    show("CUB_200_2011.tgz", 2**21, 2**21)
    show("other.zip", 3 * 2**20, None)
    text = stream.getvalue()
    assert "\rCUB_200_2011.tgz [" in text and "100.0% 2.0/2.0 MiB" in text and text.count("\n") == 1
    assert "\rother.zip 3.0 MiB" in text
