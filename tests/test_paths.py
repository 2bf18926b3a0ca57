"""Paths of the wrong kind, and outputs over files blackout did not write: one line, exit code 2, nothing touched.

Every command runs as a fresh process; a FIFO that blocked would time the test out instead of hanging it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from blackout.experiment.outputs import check_out_dir, write_run_folder
from blackout.study.store import Store
from tests.factory import make_result


def blackout(*argv, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blackout", *map(str, argv)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def refused(p: subprocess.CompletedProcess, message: str) -> None:
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("blackout: error:") and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert message in p.stderr, p.stderr


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> dict[str, str]:
    """Every entry of a folder with its checksum (files) or kind (anything else)."""
    out = {}
    for p in sorted(folder.iterdir()):
        mode = p.lstat().st_mode
        out[p.name] = sha(p) if stat.S_ISREG(mode) else stat.filemode(mode)[0]
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "s"
    runs = [make_result(seed=s, hidden=(16,)) for s in range(2)]
    with Store(path / "results.sqlite", "s") as store:
        store.add([(r.run_id, r.config) for r in runs])
        for r in runs:
            store.claim(r.run_id)
            store.finish(r.run_id, r.to_dict(), 1.0)
    (path / "sweep.json").write_text(json.dumps({"study": "s", "specs": []}))
    return path


SWEEP = ["--dataset", "digits", "--tasks", "1", "--iterations", "5", "--hidden", "8", "--jobs", "1"]


# -- reading leaves nothing behind -------------------------------------------------------------------

def test_reading_a_study_leaves_its_folder_as_it_was(study, tmp_path):
    before = listing(study)
    assert sorted(before) == ["results.sqlite", "sweep.json"]  # a store at rest has no -wal or -shm
    for argv in (["analyze", study], ["analyze", study, "--json", "--methods"],
                 ["report", study, "--out", tmp_path / "r.html"], ["export", study, "--out", tmp_path / "r.csv"],
                 ["export", study, "--format", "parquet", "--out", tmp_path / "r.parquet"],
                 ["export", study, "--format", "jsonl", "--out", tmp_path / "r.jsonl.gz"]):
        p = blackout(*argv)
        assert p.returncode == 0, p.stderr
        assert listing(study) == before, argv


# -- paths of the wrong kind -------------------------------------------------------------------------

def test_a_regular_file_is_not_a_study_folder(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    refused(blackout("sweep", f, *SWEEP), f"{f}: is a file, expected a study folder")
    refused(blackout("demo", "--out", f), f"{f}: is a file, expected a study folder")
    refused(blackout("analyze", f), f"{f}: is a file, expected a study folder or a results archive")
    refused(blackout("sweep", tmp_path / "notes.txt" / "sub", *SWEEP), f"{f}: is a file, expected a folder")
    assert f.read_text() == "mine\n" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_an_empty_path_is_refused_and_nothing_is_written_here(tmp_path, study):
    for argv, message in ((["sweep", "", *SWEEP], "study folder: expected a path, got ''"),
                          (["demo", "--out", ""], "--out: expected a path, got ''"),
                          (["run", "--tasks", "1", "--out", ""], "--out: expected a path, got ''"),
                          (["export", study, "--out", ""], "--out: expected a path, got ''"),
                          (["report", study, "--out", ""], "--out: expected a path, got ''")):
        refused(blackout(*argv, cwd=tmp_path), message)
    assert os.listdir(tmp_path) == []


def test_a_report_whose_figures_folder_is_a_file_is_refused(study, tmp_path):
    blocked = tmp_path / "r-figures"
    blocked.write_text("mine\n")
    refused(blackout("report", study, "--out", tmp_path / "r.html"), f"{blocked}: is a file, expected a folder")
    assert blocked.read_text() == "mine\n" and not (tmp_path / "r.html").exists()


def test_fifos_are_refused_without_being_opened(study, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    st = tmp_path / "st"
    st.mkdir()
    os.mkfifo(st / "results.sqlite")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.mkfifo(run_dir / "accuracy.csv")
    for argv, message in ((["run", "--config", fifo, "--check"], f"{fifo}: is a FIFO (named pipe), expected a regular file"),
                          (["sweep", tmp_path / "x", "--spec", fifo, "--check"], f"{fifo}: is a FIFO"),
                          (["analyze", st], f"{st / 'results.sqlite'}: is a FIFO"),
                          (["sweep", st, *SWEEP], f"{st / 'results.sqlite'}: is a FIFO"),
                          (["analyze", fifo], f"{fifo}: is a FIFO"),
                          (["export", study, "--out", fifo], f"--out {fifo}: is a FIFO"),
                          (["report", study, "--out", fifo], f"--out {fifo}: is a FIFO"),
                          (["run", "--dataset", "digits", "--tasks", "1", "--out", run_dir],
                           f"{run_dir / 'accuracy.csv'}: is a FIFO")):
        refused(blackout(*argv), message)
    for p in (fifo, st / "results.sqlite", run_dir / "accuracy.csv"):
        assert stat.S_ISFIFO(p.lstat().st_mode)
    assert os.listdir(run_dir) == ["accuracy.csv"] and os.listdir(st) == ["results.sqlite"]


def _character_device(tmp_path: Path) -> Path:
    """A character device to write to: a fresh null device where we may make one, else /dev/null (which a
    user who cannot make devices cannot replace either, so a regression cannot harm the machine)."""
    dev = tmp_path / "null"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return dev
    except (PermissionError, AttributeError, OSError):
        if os.geteuid() == 0:
            pytest.skip("cannot make a device node here, and /dev/null must not be put at risk as root")
        return Path("/dev/null")


def test_a_character_device_is_never_replaced(study, tmp_path):
    dev = _character_device(tmp_path)
    for argv in (["export", study, "--out", dev], ["export", study, "--format", "jsonl", "--out", dev],
                 ["report", study, "--out", dev]):
        refused(blackout(*argv), f"--out {dev}: is a character device, expected a regular file")
        assert stat.S_ISCHR(dev.lstat().st_mode)


# -- outputs never replace files blackout did not write ----------------------------------------------

def test_run_refuses_a_folder_holding_another_programs_results(tmp_path):
    for name, text in (("result.json", '{"accuracy": 0.93, "version": "2.1"}\n'),
                       ("accuracy.csv", "after_task,score\n1,0.9\n"),
                       ("diagnostics.csv", "task,owner,due\n1,me,today\n")):
        d = tmp_path / name.split(".")[0]
        d.mkdir()
        (d / name).write_text(text)
        refused(blackout("run", "--dataset", "digits", "--tasks", "1", "--out", d),
                f"{d / name}: exists and was not written by blackout")
        assert (d / name).read_text() == text and os.listdir(d) == [name]


def test_a_run_folder_of_blackouts_own_is_replaced(tmp_path):
    first = make_result(seed=0, hidden=(16,))
    write_run_folder(first, tmp_path)
    check_out_dir(tmp_path)  # its own files: nothing refused
    second = make_result([[0.5], [0.4, 0.6]], seed=1, hidden=(16,))
    write_run_folder(second, tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["run_id"] == second.run_id
    assert (tmp_path / "accuracy.csv").read_text().splitlines()[0] == "after_task,task_1,task_2"


def _foreign_parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"run_id": ["x"], "score": [1.0]}), path)


def test_exports_and_reports_replace_only_their_own_kind(study, tmp_path):
    foreign = {
        "a.csv": b"run_id,score\nx,1\n",
        "a.jsonl.gz": gzip.compress(b"some other program's log\n"),
        "b.jsonl.gz": gzip.compress(b'{"run_id": "x", "acc": []}\n'),
        "a.jsonl": b'{"acc": [[1]]}\n',
        "index.html": b"<!DOCTYPE html>\n<html><body>my home page</body></html>\n",
    }
    for name, data in foreign.items():
        (tmp_path / name).write_bytes(data)
    _foreign_parquet(tmp_path / "a.parquet")
    foreign["a.parquet"] = (tmp_path / "a.parquet").read_bytes()
    fmt = {"a.csv": "csv", "a.jsonl.gz": "jsonl", "b.jsonl.gz": "jsonl", "a.jsonl": "jsonl", "a.parquet": "parquet"}
    for name, f in fmt.items():
        refused(blackout("export", study, "--format", f, "--out", tmp_path / name), "exists and was not written by blackout")
    refused(blackout("report", study, "--out", tmp_path / "index.html"), "exists and was not written by blackout")
    assert {n: sha(tmp_path / n) for n in foreign} == {n: hashlib.sha256(d).hexdigest() for n, d in foreign.items()}
    # outputs of blackout's own are replaced, in place, each by a file of its kind
    for f, name in (("csv", "own.csv"), ("parquet", "own.parquet"), ("jsonl", "own.jsonl.gz")):
        for _ in range(2):
            p = blackout("export", study, "--format", f, "--out", tmp_path / name)
            assert p.returncode == 0, p.stderr
    for _ in range(2):
        p = blackout("report", study, "--out", tmp_path / "own.html")
        assert p.returncode == 0, p.stderr
    assert '<meta name="generator" content="blackout' in (tmp_path / "own.html").read_text()
    assert not list(tmp_path.glob(".*.tmp"))
