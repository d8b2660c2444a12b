"""Issue 19's security findings, each as a test that failed on 2752c3d: no file in a results folder runs code
(DeepSpeed shards, ``latest.pt``), YAML is bounded, a loose or foreign Ray token is refused, a sweep name stays
under ``--results``. Each bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest
import torch
import yaml

from zsl_bench.cli import main
from zsl_bench.errors import UserError

CHAIN = ", ".join(f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10))
BOMB = f"[&a0 [lol], {CHAIN}]"  # ten levels of ten aliases: 10⁹ leaves once expanded, 300 bytes here
CONFIG_KEY = "model:\n  options:\n    x:"  # a free-form dict: validation takes any value there
SPACE_KEY = "set:\n  model.options.x:"


def bad_yaml(case: str, key: str) -> bytes:
    """A YAML document with ``case`` as the value of ``key`` (or as the whole file, for bad bytes)."""
    if case == "binary":
        return b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"
    if case == "latin1":
        return f"{key} caf\xe9\n".encode("latin-1")
    if case == "deep":
        return f"{key} {'[' * 10_000}{']' * 10_000}\n".encode()
    return f"{key} {BOMB}\n".encode()


CASES = ["bomb", "binary", "latin1", "deep"]


class Payload:
    """A pickle that creates ``marker`` when unpickled (what a planted checkpoint would do with os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """Exit code 2 and exactly one stderr line; returns that line."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("zsl-bench: error: ") and "Traceback" not in err, err
    return err


def train_args(synth_root: Path, out: Path, *more: str) -> list[str]:
    args = ["train", "--model", "resnet_test", "--dataset", "synth", "--data-root", str(synth_root)]
    for key, value in {"train.epochs": 1, "train.batch_size": 32, "train.num_threads": 1}.items():
        args += ["--set", f"{key}={value}"]
    return [*args, *more, "--out", str(out)]


# ------------------------------------------------------------------------ finding 1: checkpoints hold tensors only


def test_a_foreign_pickle_in_latest_pt_is_one_line_and_runs_nothing(synth_root, tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "PWNED"
    assert main(train_args(synth_root, run)) == 0
    capsys.readouterr()
    (run / "done").unlink()
    (run / "summary.json").unlink()
    with open(run / "checkpoint" / "latest.pt", "wb") as fh:  # a plain pickle, not even a torch file
        pickle.dump({"epoch": 1, "model": Payload(marker)}, fh, protocol=2)
    line = one_line_error(capsys, main(train_args(synth_root, run)))
    assert str(run / "checkpoint" / "latest.pt") in line and re.search(r"asks for \S*open", line)
    assert not marker.exists()


def test_checkpoint_load_refuses_planted_files(tmp_path):
    from zsl_bench.engine import checkpoint, ds_checkpoint

    marker = tmp_path / "PWNED"
    zipped, raw, alien = tmp_path / "zipped.pt", tmp_path / "raw.pt", tmp_path / "alien.pt"
    torch.save({"epoch": 1, "model": Payload(marker)}, zipped)
    raw.write_bytes(pickle.dumps({"epoch": 1, "model": Payload(marker)}))
    torch.save({"weights": torch.zeros(2)}, alien)  # tensors only, but not a zsl-bench checkpoint
    for path in (zipped, raw, alien):
        with pytest.raises(UserError, match="refused to load the checkpoint") as info:
            checkpoint.load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    for path in (zipped, raw):
        with pytest.raises(UserError, match="refused to load the checkpoint"):
            ds_checkpoint.load_tensors(path)
    (tmp_path / "zero-0001").mkdir()
    zipped.rename(tmp_path / "zero-0001" / "mp_rank_00_model_states.pt")
    with pytest.raises(UserError, match=r"asks for \S*open"):
        ds_checkpoint.check_tag(tmp_path / "zero-0001")  # lists globals, unpickles nothing
    for tag in ("../zero-0001", "/etc", 3):
        with pytest.raises(UserError, match="not zero-NNNN"):
            ds_checkpoint.tag_folder(tmp_path, tag)
    assert not marker.exists()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.faults
def test_a_planted_deepspeed_shard_runs_nothing_on_resume(synth_root, tmp_path, capfd, monkeypatch):
    """The finding as reported: a real ZeRO-2 run, a payload planted in its model states, the same command
    again. The CLI refuses it before any worker starts; the workers' own engine refuses it too."""
    from zsl_bench.config import build_config
    from zsl_bench.engine import ds_checkpoint
    from zsl_bench.engine.launch import launch
    from zsl_bench.errors import TrialFailed

    run, marker = tmp_path / "run", tmp_path / "PWNED"
    settings = {"train.strategy": "deepspeed", "train.num_workers": 2, "train.zero_stage": 2, "model.options.width": 8}
    args = train_args(synth_root, run, *[f"--set={key}={value}" for key, value in settings.items()])
    assert main(args) == 0, capfd.readouterr().err[-3000:]
    capfd.readouterr()
    shard = run / "checkpoint" / "zero-0001" / "mp_rank_00_model_states.pt"
    assert shard.is_file()
    torch.save({"module": Payload(marker), "dp_world_size": 2}, shard)
    (run / "done").unlink()
    (run / "summary.json").unlink()

    code = main(args)
    assert not marker.exists()  # 2752c3d: DeepSpeed unpickled the shard and ran the payload
    line = one_line_error(capfd, code)
    assert str(shard) in line

    monkeypatch.setattr(ds_checkpoint, "check_run", lambda run_dir: None)  # the workers alone now
    train = {"train.epochs": 1, "train.batch_size": 32, "train.num_threads": 1}
    cfg = build_config(
        None, {"model.name": "resnet_test", "data.name": "synth", "data.root": str(synth_root)} | train | settings
    )
    with pytest.raises(TrialFailed, match="exited with code"):
        launch(cfg, run)
    err = capfd.readouterr().err
    assert f"refused to load the checkpoint {shard}" in err and not marker.exists()


# ---------------------------------------------------------------------------------- finding 6: bounded YAML


@pytest.mark.parametrize("case", CASES)
def test_bad_config_file_is_one_line(case, synth_root, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(bad_yaml(case, CONFIG_KEY))
    out = tmp_path / "run"
    line = one_line_error(capsys, main(train_args(synth_root, out, "--config", str(bad))))
    assert str(bad) in line and not out.exists()


@pytest.mark.parametrize("case", CASES)
def test_bad_space_file_is_one_line(case, tmp_path, capsys):
    bad = tmp_path / "space.yaml"
    bad.write_bytes(
        b"base: quickstart\n"
        + bad_yaml(case, SPACE_KEY)
        + b"space:\n  optim.lr: {type: float, low: 1.0e-3, high: 1.0e-2}\n"
    )
    line = one_line_error(capsys, main(["sweep", "--space", str(bad), "--results", str(tmp_path / "results")]))
    assert str(bad) in line and not (tmp_path / "results").exists()


def test_bomb_in_a_set_value_is_one_line(synth_root, tmp_path, capsys):
    line = one_line_error(capsys, main(train_args(synth_root, tmp_path / "run", "--set", f"model.options.x={BOMB}")))
    assert "--set model.options.x" in line and "alias" in line


@pytest.mark.parametrize("case", CASES)
def test_read_yaml_and_run_dirs_are_bounded(case, tmp_path):
    from zsl_bench.config import read_yaml
    from zsl_bench.report.reference import load_reference
    from zsl_bench.rundir import UnreadableRun, read_run

    path = tmp_path / "config.yaml"
    path.write_bytes(bad_yaml(case, CONFIG_KEY))
    with pytest.raises(UserError) as info:
        read_yaml(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UnreadableRun):
        read_run(tmp_path)
    with pytest.raises(UserError, match="reference numbers") as info:
        load_reference(tmp_path)
    assert "\n" not in str(info.value)


def test_bounded_yaml_still_reads_what_configs_use(tmp_path):
    from zsl_bench import safe_yaml

    path = tmp_path / "ok.yaml"
    path.write_text("\ufeffbase: &b {lr: 0.1, tags: [a, b]}\nother: *b\nnested: [[[[1]]]]\n")
    assert safe_yaml.load_file(path) == {
        "base": {"lr": 0.1, "tags": ["a", "b"]},
        "other": {"lr": 0.1, "tags": ["a", "b"]},
        "nested": [[[[1]]]],
    }
    (tmp_path / "cycle.yaml").write_text("a: &x [*x]\n")
    with pytest.raises(UserError, match="refers to a node that contains it"):
        safe_yaml.load_file(tmp_path / "cycle.yaml")
    assert safe_yaml.load_file(tmp_path / "ok.yaml") == yaml.safe_load(path.read_text(encoding="utf-8-sig"))


# ----------------------------------------------------------------------------- finding 7: the Ray token file


@pytest.fixture
def clean_ray_env(monkeypatch):
    """No token in the environment; whatever a test sets is undone afterwards."""
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(var, "")  # records the original value for teardown
        monkeypatch.delenv(var)
    return monkeypatch


def planted(ray_dir: Path, mode: int) -> Path:
    ray_dir.mkdir(parents=True, exist_ok=True)
    token = ray_dir / "auth_token"
    token.write_text("0123456789abcdef\n")
    token.chmod(mode)
    return token


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_loose_token_is_refused(mode, tmp_path, clean_ray_env):
    from zsl_bench.cluster.auth import read_token
    from zsl_bench.search.ray_adapter import ensure_local_token

    token = planted(tmp_path / "_ray", mode)
    for use in (lambda: ensure_local_token(tmp_path / "_ray"), lambda: read_token(token)):
        with pytest.raises(UserError, match=r"chmod 600") as info:
            use()
        assert str(token) in str(info.value) and "\n" not in str(info.value)
    assert "RAY_AUTH_TOKEN_PATH" not in os.environ


def test_a_token_of_another_user_is_refused(tmp_path, clean_ray_env):
    from zsl_bench.cluster.auth import check_token_file
    from zsl_bench.search.ray_adapter import ensure_local_token

    token = planted(tmp_path / "_ray", 0o600)
    clean_ray_env.setattr(os, "getuid", lambda: token.stat().st_uid + 1)
    with pytest.raises(UserError, match="belongs to another user"):
        ensure_local_token(tmp_path / "_ray")
    with pytest.raises(UserError, match="belongs to another user"):
        check_token_file(token)


def test_a_linked_token_is_refused_and_a_private_one_reused(tmp_path, clean_ray_env):
    from zsl_bench.search.ray_adapter import ensure_local_token

    elsewhere = planted(tmp_path / "elsewhere", 0o600)
    (tmp_path / "_ray").mkdir()
    (tmp_path / "_ray" / "auth_token").symlink_to(elsewhere)
    with pytest.raises(UserError, match="not a regular file"):
        ensure_local_token(tmp_path / "_ray")
    own = planted(tmp_path / "ok" / "_ray", 0o600)
    ensure_local_token(own.parent)  # this user's, 0600: a resumed sweep keeps it
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == str(own) and stat.S_IMODE(own.stat().st_mode) == 0o600


# --------------------------------------------------------------------- finding 3: the sweep name is one folder


@pytest.fixture
def sweep_setup(synth_root, tmp_path, clean_ray_env):
    """A valid space on existing data, results three levels down, and Ray made unimportable (nothing may start)."""
    clean_ray_env.setitem(sys.modules, "ray", None)
    clean_ray_env.chdir(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(
        f"base: quickstart\nset: {{data.root: {synth_root}, train.epochs: 1}}\n"
        "sweep: {searcher: random, scheduler: fifo, num_samples: 1, top_k: 0}\n"
        "space:\n  optim.lr: {type: float, low: 1.0e-3, high: 1.0e-2}\n"
    )
    results = tmp_path / "a" / "b" / "results"
    results.mkdir(parents=True)
    return space, results


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", ["../../X", "ABS", "..", ".", "a/b", "a\\b", "x\ny", "~", "", "n" * 201])
def test_name_option_outside_results_is_one_line(name, sweep_setup, tmp_path, capsys):
    space, results = sweep_setup
    name = str(tmp_path / "abs" / "X") if name == "ABS" else name
    before = tree(tmp_path)
    line = one_line_error(capsys, main(["sweep", "--space", str(space), "--results", str(results), "--name", name]))
    assert "not one folder name" in line
    assert tree(tmp_path) == before  # nothing written, inside or outside the results root


def test_name_in_space_file_outside_results_is_one_line(sweep_setup, tmp_path, capsys):
    space, results = sweep_setup
    space.write_text(space.read_text().replace("sweep: {", "sweep: {name: ../../X, "))
    before = tree(tmp_path)
    line = one_line_error(capsys, main(["sweep", "--space", str(space), "--results", str(results)]))
    assert str(space) in line and "sweep.name" in line and "not one folder name" in line
    assert tree(tmp_path) == before


def test_plain_names_pass():
    from zsl_bench.search.space import SweepSettings, sweep_name_problem

    for name in ("cub-vmamba", "sweep_2.v1", "A", "..x", "cancel me", 'o\'brien "quick" sweep'):
        assert sweep_name_problem(name) is None
        assert SweepSettings(name=name).name == name


# -------------------------------------------------------------- finding 5: listed images stay in the dataset root


def listed_copy(synth_root: Path, tmp_path: Path, first: str) -> tuple[Path, str]:
    """A copy of the synthetic dataset whose image_files.txt lists ``first`` as its first image."""
    import shutil

    root = tmp_path / "deep" / "er" / "synth"
    shutil.copytree(synth_root, root)
    lines = (root / "image_files.txt").read_text().splitlines()
    original = lines[0].split("\t")[0]
    lines[0] = f"{first}\t{lines[0].split(chr(9))[1]}"
    (root / "image_files.txt").write_text("\n".join(lines) + "\n")
    return root, original


@pytest.mark.parametrize("first", ["../../../../etc/passwd", "images/../../../../../etc/passwd", "/etc/passwd"])
def test_an_image_path_leaving_the_root_is_one_line(first, synth_root, tmp_path, capsys):
    root, _ = listed_copy(synth_root, tmp_path, first)
    line = one_line_error(capsys, main(["data", "inspect", "--dataset", "synth", "--root", str(root)]))
    assert "image_files.txt line 1 " in line and "passwd" in line


@pytest.mark.parametrize("link", ["file", "folder"])
def test_an_image_linked_outside_the_root_is_one_line(link, synth_root, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"not yours")
    if link == "file":
        root, _ = listed_copy(synth_root, tmp_path, "images/evil.png")
        (root / "images" / "evil.png").symlink_to(outside / "secret.png")
    else:
        root, _ = listed_copy(synth_root, tmp_path, "images/evil/secret.png")
        (root / "images" / "evil").symlink_to(outside)
    line = one_line_error(capsys, main(["data", "inspect", "--dataset", "synth", "--root", str(root)]))
    assert "image_files.txt line 1 " in line and "symbolic link" in line


def test_links_inside_the_root_and_a_linked_root_pass(synth_root, tmp_path, capsys):
    root, original = listed_copy(synth_root, tmp_path, "images/alias.png")
    (root / "images" / "alias.png").symlink_to(root / original)
    (tmp_path / "linked").symlink_to(root)  # the whole dataset folder linked in: allowed
    for where in (root, tmp_path / "linked"):
        assert main(["data", "inspect", "--dataset", "synth", "--root", str(where), "--json"]) == 0
        assert '"images_missing": 0' in capsys.readouterr().out


# ------------------------------------------------------------ finding 4: fetched links cannot leave --root


@pytest.fixture
def served(tmp_path):
    """``served(name, body)`` puts a file on an HTTP server of 127.0.0.1 and returns the server's URL."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            """No access log on stderr (the tests count its lines)."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def serve(name: str, body: bytes) -> str:
        (folder / name).write_bytes(body)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def linked_tgz(link_target: str) -> bytes:
    """A SUN-like archive: ``top/images/a.jpg`` and ``top/UPLINK -> link_target`` (inside the tree as packed)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in ("top", "top/images"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        info = tarfile.TarInfo("top/images/a.jpg")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"1"))
        info = tarfile.TarInfo("top/UPLINK")
        info.type, info.linkname = tarfile.SYMTYPE, link_target
        tf.addfile(info)
    return buf.getvalue()


def links_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_symlink()]


@pytest.mark.parametrize("target", ["..", "images", "../.."])
def test_a_fetched_archive_with_links_is_refused_and_kept_aside(target, served, tmp_path, capsys):
    root = tmp_path / "data" / "SUN"
    url = served("SUNAttributeDB_Images.tar.gz", linked_tgz(target))
    argv = ["data", "fetch", "sun", "--root", str(root), "--mirror", url]
    line = one_line_error(capsys, main(argv))
    assert "'top/UPLINK' is a symbolic link" in line
    downloads = root / ".zsl-fetch" / "downloads"
    aside = downloads / "SUNAttributeDB_Images.tar.gz.refused"
    assert str(aside) in line and aside.is_file()
    assert sorted(p.name for p in downloads.iterdir()) == [aside.name]  # the archive itself is not kept to retry
    assert not links_under(tmp_path / "data") and not (root / "images").exists()
    assert sorted(p.name for p in (root / ".zsl-fetch").iterdir()) == ["downloads"]  # no staging, no state
    line = one_line_error(capsys, main(argv))  # a rerun downloads afresh and refuses that copy: still one line
    assert "symbolic link" in line


def test_a_plain_fetch_leaves_no_empty_downloads_folder(served, tmp_path, capsys):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("top/images/a.jpg")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"1"))
    root = tmp_path / "SUN"
    url = served("SUNAttributeDB_Images.tar.gz", buf.getvalue())
    assert main(["data", "fetch", "sun", "--root", str(root), "--mirror", url]) == 0
    assert (root / "images" / "a.jpg").is_file()
    assert not (root / ".zsl-fetch" / "downloads").exists()


# ------------------------------------------- finding 2: --resume unpickles nothing; integrity: no repeated top-up


def sweep_space(tmp_path: Path, synth_root: Path, name: str, sweep: dict, space: dict) -> Path:
    """A one-epoch space file on the synthetic data."""
    doc = {
        "base": "quickstart",
        "set": {"data.root": str(synth_root), "train.epochs": 1, "model.options.width": 8},
        "sweep": {"name": name, "scheduler": "fifo", "top_k": 0, "resources_per_trial": {"cpu": 1}, **sweep},
        "space": space,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def search_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))


def lr_of(run: Path) -> float:
    return yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.faults
def test_grid_resume_unpickles_nothing_and_runs_each_point_once(synth_root, tmp_path, cli):
    grid = [0.001, 0.002, 0.003]
    space = sweep_space(
        tmp_path, synth_root, "g", {"searcher": "grid", "num_samples": 1, "max_concurrent": 2},
        {"optim.lr": {"type": "grid", "values": grid}},
    )  # fmt: skip
    results, marker = tmp_path / "results", tmp_path / "PWNED"
    code, _, err = cli("sweep", "--space", str(space), "--results", str(results))
    assert code == 0, err[-3000:]
    sweep_dir = results / "g"
    first, second, _ = search_dirs(sweep_dir)
    lost = lr_of(first)
    shutil.rmtree(first)  # a trial the killed driver never recorded
    (second / "done").unlink()  # one it was running
    stamp = {d.name: (d / "done").stat().st_mtime_ns for d in search_dirs(sweep_dir) if (d / "done").exists()}
    pkl = sweep_dir / "_ray" / "search" / "tuner.pkl"
    pkl.parent.mkdir(parents=True, exist_ok=True)
    pkl.write_bytes(pickle.dumps(Payload(marker)))  # Tune's restore would run it
    code, out, err = cli("sweep", "--space", str(space), "--results", str(results), "--resume")
    assert code == 0, err[-3000:]
    assert not marker.exists()
    runs = search_dirs(sweep_dir)
    assert sorted(lr_of(d) for d in runs) == grid and all((d / "done").exists() for d in runs), runs
    assert lost in [lr_of(d) for d in runs if d.name not in stamp and d.name != second.name]
    for name, mtime in stamp.items():  # the finished point was not run again
        assert (sweep_dir / name / "done").stat().st_mtime_ns == mtime
    assert "search 3 completed" in out


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.faults
def test_an_optuna_top_up_does_not_repeat_a_drawn_configuration(synth_root, tmp_path, cli):
    space = sweep_space(
        tmp_path, synth_root, "o", {"searcher": "optuna", "num_samples": 2, "max_concurrent": 2, "seed": 3},
        {"optim.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True}},
    )  # fmt: skip
    results = tmp_path / "results"
    code, _, err = cli("sweep", "--space", str(space), "--results", str(results))
    assert code == 0, err[-3000:]
    sweep_dir = results / "o"
    drawn = {lr_of(d) for d in search_dirs(sweep_dir)}
    shutil.rmtree(search_dirs(sweep_dir)[0])  # lost with the driver: the resume draws one trial
    code, _, err = cli("sweep", "--space", str(space), "--results", str(results), "--resume")
    assert code == 0, err[-3000:]
    runs = search_dirs(sweep_dir)
    assert len(runs) == 2 and all((d / "done").exists() for d in runs)
    new = [lr_of(d) for d in runs if lr_of(d) not in drawn]
    assert len(new) == 1, (drawn, [lr_of(d) for d in runs])  # not a draw the interrupted sweep had made


# ------------------------------------------- findings 8 and 9: a sweep's own Ray is private and keeps metrics local

PROBE = """
import glob, json, os, stat, psutil
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0123456789abcdef0123456789abcdef")
from zsl_bench.search.local_ray import start_local_ray as _start_local_ray
import ray
local = _start_local_ray(1, False, None)
temp = local.temp
@ray.remote
def pid():
    return os.getpid()
ray.get(pid.remote())  # a worker process up too
me = psutil.Process()
procs = {p.pid: p for p in me.children(recursive=True)} | {me.pid: me}
listen = [[c.laddr.ip, c.laddr.port, procs[c.pid].name()] for c in psutil.net_connections("inet")
          if c.status == psutil.CONN_LISTEN and c.pid in procs]
shared = []
for folder, dirs, _ in os.walk(temp / "ray"):
    shared += [os.path.join(folder, d) for d in dirs if stat.S_IMODE(os.stat(os.path.join(folder, d)).st_mode) & 0o002]
ports = [int(open(f).read()) for f in glob.glob(str(temp / "ray/session_latest/metrics_export_port_*"))]
info = os.stat(temp)
print(json.dumps({"temp": str(temp), "mode": stat.S_IMODE(info.st_mode), "uid": info.st_uid, "uid_me": os.getuid(),
                  "listen": listen, "shared": shared, "metrics_ports": ports}))
local.stop()  # what run_sweep does at the end
"""


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.faults
def test_a_sweeps_ray_is_private_and_its_metrics_listen_on_loopback(tmp_path):
    import json
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(got["temp"]).name.startswith("zslray-")
    assert got["mode"] == 0o700 and got["uid"] == got["uid_me"]
    assert got["shared"], "Ray no longer makes its folders 0777: the private folder above them may be unneeded"
    anywhere = [entry for entry in got["listen"] if entry[0] == "0.0.0.0"]
    assert not anywhere, anywhere  # the Prometheus servers (metrics export, dashboard, autoscaler) included
    by_port = {port: ip for ip, port, _ in got["listen"]}
    assert got["metrics_ports"] and all(by_port.get(p) == "127.0.0.1" for p in got["metrics_ports"]), got
    grpc = {name for ip, _, name in got["listen"] if ip == "::"}  # token-checked gRPC, see cluster/README.md
    assert grpc <= {"gcs_server", "raylet", "python", "ray::IDLE", "ray::DashboardAgent", "ray::pid"}, grpc
