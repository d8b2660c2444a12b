import json

import pytest

from zsl_bench.rundir import RunWriter, UnreadableRun, find_run_dirs, read_run, write_text_atomic


def test_writer_reader_round_trip(tmp_path):
    w = RunWriter(tmp_path / "run")
    w.config({"model": {"name": "m"}})
    w.metrics({"epoch": 1, "split": "val", "h": 0.5})
    w.metrics({"epoch": 2, "split": "val", "h": 0.6})
    run = read_run(tmp_path / "run")
    assert not run.done and run.summary is None
    w.summary({"status": "completed"})
    w.done()
    run = read_run(tmp_path / "run")
    assert run.done and run.summary == {"status": "completed"}
    assert [m["h"] for m in run.metrics] == [0.5, 0.6]
    assert not list((tmp_path / "run").glob(".*tmp"))  # no temp files left behind


def test_rewriting_a_run_dir_clears_old_markers(tmp_path):
    w = RunWriter(tmp_path / "run")
    w.config({})
    w.error("boom")
    w.done()
    RunWriter(tmp_path / "run")
    assert not (tmp_path / "run" / "done").exists() and not (tmp_path / "run" / "error.txt").exists()


def test_corrupt_files_are_unreadable(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("model: {name: m}\n")
    (tmp_path / "r" / "summary.json").write_text("{half")
    with pytest.raises(UnreadableRun):
        read_run(tmp_path / "r")


def test_find_run_dirs_skips_private_dirs(tmp_path):
    for d in ("sweep/a", "sweep/_ray/x", "sweep/.hidden", "b"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "config.yaml").write_text("{}")
    found = sorted(p.relative_to(tmp_path).as_posix() for p in find_run_dirs(tmp_path))
    assert found == ["b", "sweep/a"]


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    write_text_atomic(path, json.dumps({"v": 1}))

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", explode)
    with pytest.raises(OSError):
        write_text_atomic(path, json.dumps({"v": 2}))
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_read_record_types_the_summary_and_rejects_a_malformed_one(tmp_path):
    from zsl_bench.rundir import read_record

    w = RunWriter(tmp_path / "run")
    w.config({"model": {"name": "m"}, "meta": {"stage": "final"}})
    w.metrics({"epoch": 1, "split": "test", "czsl": 0.5, "u": 0.4, "s": 0.6, "h": 0.48})
    w.summary({"status": "completed", "compute_s": 3.0})
    w.done()
    record = read_record(tmp_path / "run")
    assert record.scored and record.stage == "final" and record.summary.compute_s == 3.0
    assert record.evals()[0].scores() == {"czsl": 0.5, "u": 0.4, "s": 0.6, "h": 0.48}
    w.summary({"status": "completed", "compute_s": "soon"})
    with pytest.raises(UnreadableRun, match="compute_s"):
        read_record(tmp_path / "run")
    (tmp_path / "run" / "summary.json").unlink()
    with pytest.raises(UnreadableRun, match=r"done but no summary\.json"):
        read_record(tmp_path / "run")


def test_test_scores_epoch_and_gamma_are_keywords(tmp_path):
    w = RunWriter(tmp_path / "run")
    with pytest.raises(TypeError):
        w.test_scores([[0.0]], [0], [0], [0], 1, 0.0)
    w.test_scores([[0.0]], [0], [0], [0], epoch=1, gamma=0.0)
    assert (tmp_path / "run" / "test_scores.npz").exists()
