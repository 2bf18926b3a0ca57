"""Paths of the wrong kind, and outputs over files blackout did not write: one line, exit code 2, nothing touched.

Every command runs in a fresh process; a FIFO that blocked would time the test out instead of hanging it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pytest

from blackout import Study
from blackout.errors import ConfigError
from blackout.experiment.outputs import check_out_dir, write_run_folder
from tests.commandline import blackout, refused, run_commands
from tests.factory import make_result, make_study


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
    return make_study(tmp_path_factory.mktemp("study") / "s")


SWEEP = ["--dataset", "digits", "--tasks", "1", "--iterations", "5", "--hidden", "8", "--jobs", "1"]


# -- reading leaves nothing behind -------------------------------------------------------------------


def test_reading_a_study_leaves_its_folder_as_it_was(study, tmp_path):
    before = listing(study)
    assert sorted(before) == ["results.sqlite", "sweep.json"]  # a store at rest has no -wal or -shm
    p = blackout("analyze", study)
    assert p.returncode == 0, p.stderr
    assert listing(study) == before
    done = run_commands(
        ["analyze", study, "--json", "--methods"],
        ["report", study, "--out", tmp_path / "r.html"],
        ["export", study, "--out", tmp_path / "r.csv"],
        ["export", study, "--format", "parquet", "--out", tmp_path / "r.parquet"],
        ["export", study, "--format", "jsonl", "--out", tmp_path / "r.jsonl.gz"],
    )
    assert [code for code, _ in done] == [0] * 5, done
    assert listing(study) == before


# -- paths of the wrong kind -------------------------------------------------------------------------


def test_a_regular_file_is_not_a_study_folder(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    done = run_commands(
        ["sweep", f, *SWEEP], ["demo", "--out", f], ["analyze", f], ["sweep", tmp_path / "notes.txt" / "sub", *SWEEP]
    )
    for result, message in zip(
        done,
        (
            "is a file, expected a",
            "is a file, expected a",
            "is a file, expected a study folder or a results archive",
            "is a file, expected a folder",
        ),
    ):
        refused(result, f"{f}: {message}")
    assert f.read_text() == "mine\n" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_an_empty_path_is_refused_and_nothing_is_written_here(tmp_path, study):
    done = run_commands(
        ["sweep", "", *SWEEP],
        ["demo", "--out", ""],
        ["run", "--tasks", "1", "--out", ""],
        ["export", study, "--out", ""],
        ["report", study, "--out", ""],
        ["export", study, "--out", " "],
        cwd=tmp_path,
    )
    for result, message in zip(
        done,
        ["argument study: expected a path, got ''"]
        + ["--out: expected a path, got ''"] * 4
        + ["--out: expected a path, got ' '"],
        strict=True,
    ):
        refused(result, message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda study: Study(""), "Study: expected a path, got ''"),
        (lambda study: Study(study).export(out=""), "out: expected a path, got ''"),
        (lambda study: Study(study).report(out=" "), "out: expected a path, got ' '"),
    ],
)
def test_an_empty_path_is_refused_from_python_too(tmp_path, monkeypatch, study, call, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(message)):
        call(study)
    assert os.listdir(tmp_path) == []


def test_a_report_keeps_off_a_figures_folder_that_is_a_file_and_figures_it_did_not_save(study, tmp_path):
    blocked = tmp_path / "r-figures"
    blocked.write_text("mine\n")
    (tmp_path / "q-figures").mkdir()
    theirs = tmp_path / "q-figures" / "capacity.png"
    theirs.write_bytes(b"\x89PNG\r\n\x1a\n someone else's plot")
    done = run_commands(
        ["report", study, "--out", tmp_path / "r.html"], ["report", study, "--out", tmp_path / "q.html"]
    )
    refused(done[0], f"{blocked}: is a file, expected a folder")
    refused(done[1], f"{theirs}: exists and was not written by blackout; refusing to replace it")
    assert blocked.read_text() == "mine\n" and theirs.read_bytes() == b"\x89PNG\r\n\x1a\n someone else's plot"
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "q.html").exists()


def test_fifos_are_refused_without_being_opened(study, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    st = tmp_path / "st"
    st.mkdir()
    os.mkfifo(st / "results.sqlite")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.mkfifo(run_dir / "accuracy.csv")
    data = tmp_path / "data"  # three IDX files and a FIFO in the fourth one's place
    data.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (data / name).write_bytes(b"\0\0\x08\x01\0\0\0\0")
    os.mkfifo(data / "t10k-images-idx3-ubyte")
    cases = (
        (["run", "--config", fifo, "--check"], f"{fifo}: is a FIFO (named pipe), expected a TOML file"),
        (["sweep", tmp_path / "x", "--spec", fifo, "--check"], f"{fifo}: is a FIFO"),
        (["analyze", st], f"{st / 'results.sqlite'}: is a FIFO"),
        (["sweep", st, *SWEEP], f"{st / 'results.sqlite'}: is a FIFO"),
        (["analyze", fifo], f"{fifo}: is a FIFO"),
        (["export", study, "--out", fifo], f"--out {fifo}: is a FIFO"),
        (["report", study, "--out", fifo], f"--out {fifo}: is a FIFO"),
        (
            ["run", "--dataset", "digits", "--tasks", "1", "--out", run_dir],
            f"{run_dir / 'accuracy.csv'}: is a FIFO (named pipe), expected a regular file",
        ),
        (
            ["run", "--dataset", "mnist", "--data-dir", data, "--tasks", "1"],
            f"{data / 't10k-images-idx3-ubyte'}: is a FIFO (named pipe), expected a regular IDX file",
        ),
    )
    for result, (_, message) in zip(run_commands(*(argv for argv, _ in cases)), cases):
        refused(result, message)
    for p in (fifo, st / "results.sqlite", run_dir / "accuracy.csv", data / "t10k-images-idx3-ubyte"):
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
    p = blackout("export", study, "--out", dev)
    refused((p.returncode, p.stderr), f"--out {dev}: is a character device, expected a regular file")
    for result in run_commands(["export", study, "--format", "jsonl", "--out", dev], ["report", study, "--out", dev]):
        refused(result, f"--out {dev}: is a character device, expected a regular file")
    assert stat.S_ISCHR(dev.lstat().st_mode)


# -- outputs never replace files blackout did not write ----------------------------------------------


def test_run_refuses_a_folder_holding_another_programs_results(tmp_path):
    foreign = {
        "result.json": '{"accuracy": 0.93, "version": "2.1"}\n',
        "accuracy.csv": "after_task,score\n1,0.9\n",
        "diagnostics.csv": "task,owner,due\n1,me,today\n",
    }
    for name, text in foreign.items():
        (tmp_path / name.split(".")[0]).mkdir()
        (tmp_path / name.split(".")[0] / name).write_text(text)
    done = run_commands(
        *(["run", "--dataset", "digits", "--tasks", "1", "--out", tmp_path / n.split(".")[0]] for n in foreign)
    )
    for result, (name, text) in zip(done, foreign.items()):
        d = tmp_path / name.split(".")[0]
        refused(result, f"{d / name}: exists and was not written by blackout; refusing to replace it")
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
    done = run_commands(
        *(["export", study, "--format", f, "--out", tmp_path / name] for name, f in fmt.items()),
        ["report", study, "--out", tmp_path / "index.html"],
    )
    for result in done:
        refused(result, "exists and was not written by blackout; refusing to replace it")
    assert {n: sha(tmp_path / n) for n in foreign} == {n: hashlib.sha256(d).hexdigest() for n, d in foreign.items()}
    # outputs of blackout's own are replaced, each by a file of its kind
    own = [
        ["export", study, "--format", f, "--out", tmp_path / name]
        for f, name in (("csv", "own.csv"), ("parquet", "own.parquet"), ("jsonl", "own.jsonl.gz"))
    ]
    own.append(["report", study, "--out", tmp_path / "own.html"])
    done = run_commands(*own, *own)
    assert [code for code, _ in done] == [0] * 8, done
    # a link is never replaced, even one to a file of blackout's own
    (tmp_path / "link.csv").symlink_to(tmp_path / "own.csv")
    refused(
        *run_commands(["export", study, "--out", tmp_path / "link.csv"]),
        f"--out {tmp_path / 'link.csv'}: is a symbolic link, expected a regular file; refusing to replace it",
    )
    assert (tmp_path / "link.csv").is_symlink()
    assert '<meta name="generator" content="blackout' in (tmp_path / "own.html").read_text()
    assert not list(tmp_path.glob(".*.tmp"))
