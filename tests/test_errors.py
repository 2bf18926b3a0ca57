"""Nothing lost, nothing misreported: bad input is one line and exit code 2, and nothing computed is touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from blackout.cli import main
from blackout.study.store import Store
from tests.factory import make_study


def _fails(capsys, argv: list[str], message: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("blackout: error:")


def _digest(folder: Path) -> dict[str, str]:
    """Checksums of every file of a store (the database and its -wal/-shm companions)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("results.sqlite*"))}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished study of two runs and one failed run, made without training (results by hand)."""
    return make_study(tmp_path_factory.mktemp("study") / "s", failed="RuntimeError: out of memory <in a group of 3>")


# -- outputs never overwrite a store or lose a trained result ---------------------------------


@pytest.mark.parametrize("command,suffix", [("export", ""), ("report", ""), ("export", "-wal"), ("report", "-shm")])
def test_no_output_may_be_the_store(study, capsys, command, suffix):
    before = _digest(study)
    _fails(
        capsys, [command, str(study), "--out", str(study / f"results.sqlite{suffix}")], "is the study's results store"
    )
    assert _digest(study) == before


def test_an_existing_file_of_another_kind_is_never_replaced(study, tmp_path, capsys):
    notes = tmp_path / "notes.csv"
    notes.write_text("my notes, not a table\n")
    _fails(
        capsys,
        ["export", str(study), "--out", str(notes)],
        "exists and was not written by blackout; refusing to replace it",
    )
    assert notes.read_text() == "my notes, not a table\n"
    page = tmp_path / "page.html"
    page.write_bytes(b"\x89PNG not html")
    _fails(capsys, ["report", str(study), "--out", str(page)], "exists and was not written by blackout")
    table = tmp_path / "runs.csv"
    assert main(["export", str(study), "--out", str(table)]) == 0
    assert main(["export", str(study), "--out", str(table)]) == 0  # its own kind: replaced
    assert table.read_text().startswith("run_id,")
    _fails(capsys, ["export", str(study), "--out", str(tmp_path / "missing" / "x.csv")], "does not exist")


def test_run_checks_its_results_folder_before_training(tmp_path, capsys, monkeypatch):
    import blackout.api

    monkeypatch.setattr(blackout.api, "run", lambda *a, **k: pytest.fail("trained before checking --out"))
    f = tmp_path / "a-file"
    f.write_text("x")
    _fails(capsys, ["run", "--tasks", "1", "--out", str(f)], "is a file, expected a folder")
    (tmp_path / "d" / "result.json").mkdir(parents=True)
    _fails(
        capsys, ["run", "--tasks", "1", "--out", str(tmp_path / "d")], "result.json: is a folder, expected a file path"
    )


def test_run_creates_missing_parent_folders(tmp_path):
    out = tmp_path / "a" / "b" / "c"
    assert main(["run", "--tasks", "1", "--iterations", "20", "--hidden", "8", "--quiet", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"result.json", "accuracy.csv", "diagnostics.csv"}


# -- validation before any run -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["run", "--check", "--stream", "split", "--tasks", "6"],
            "tasks: a split stream needs tasks x classes_per_task <= 10",
        ),
        (["run", "--check", "--tasks", "100000"], "tasks: 100,000 tasks need an accuracy matrix of about"),
        (["run", "--check", "--hidden", "1000000000"], "hidden: a network of"),
        (["run", "--check", "--tasks", "1_0"], "tasks: expected an integer, got '1_0'"),
        (["run", "--check", "--lr", "٠٫١"], "lr: expected a number"),
        (["run", "--check", "--margin", "0.95"], "margin: expected chance + margin < 1"),
        (["run", "--check", "--method", "sgd", "--lam", "3"], "lam: not a setting of method 'sgd'"),
        (["sweep", "x", "--check", "--seeds", "0-1,5-2"], "seed: range '5-2' runs backwards"),
        (["sweep", "x", "--check", "--seeds", ""], "seed: expected at least one value"),
        (["sweep", "x", "--check", "--stream", "split", "--tasks", "5,6"], "tasks: a split stream needs"),
        (["sweep", "x", "--jobs", "-1"], "--jobs: expected an integer >= 1, got '-1'"),
        (["sweep", "x", "--jobs", "0"], "--jobs: expected an integer >= 1, got '0'"),
        (["analyze", "x", "--bootstrap", "0"], "--bootstrap: expected an integer >= 1, got '0'"),
        (["analyze", "x", "--bootstrap", "-5"], "--bootstrap: expected an integer >= 1"),
    ],
)
def test_bad_values_are_refused_before_anything_runs(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    _fails(capsys, argv, message)
    assert not (tmp_path / "x").exists()


def test_check_validates_what_a_run_validates(capsys):
    assert main(["run", "--check", "--stream", "split", "--tasks", "5", "--method", "lwf", "--multi-head"]) == 0
    assert json.loads(capsys.readouterr().out)["method"]["method"] == "lwf"
    assert main(["sweep", "x", "--check", "--method", "sgd,ewc", "--seeds", "0-2"]) == 0
    assert capsys.readouterr().out.startswith("6 runs, every combination valid")


# -- a study is one study ---------------------------------------------------------------------------


def test_sweep_file_study_must_be_a_name(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text("study = 5\n[grid]\nseed = [0]\n")
    _fails(capsys, ["sweep", str(tmp_path / "st"), "--spec", str(spec)], "study: expected a name in quotes, got 5")
    assert not (tmp_path / "st").exists()


def test_a_different_grid_is_refused_unless_extended_and_the_history_is_kept(tmp_path, capsys):
    st = tmp_path / "st"
    common = ["--dataset", "digits", "--tasks", "1", "--iterations", "10", "--hidden", "8", "--jobs", "1"]
    assert main(["sweep", str(st), *common]) == 0
    capsys.readouterr()
    before = _digest(st)
    _fails(capsys, ["sweep", str(st), *common, "--seeds", "0-1"], "already holds 1 runs of another grid; --extend")
    assert _digest(st) == before
    assert main(["sweep", str(st), *common]) == 0  # the same grid again: resumes, nothing new
    assert main(["sweep", str(st), *common, "--seeds", "0-1", "--extend"]) == 0
    history = json.loads((st / "sweep.json").read_text())
    assert history["study"] == "st" and [s["runs"] for s in history["specs"]] == [1, 2]
    assert Store(st / "results.sqlite", None, readonly=True).status_counts()["done"] == 2


# -- damaged files are errors, and reading never writes ----------------------------------------------


def test_a_store_without_a_runs_table_is_refused_untouched(tmp_path, capsys):
    st = tmp_path / "st"
    st.mkdir()
    with sqlite3.connect(st / "results.sqlite") as c:
        c.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        c.execute("INSERT INTO meta VALUES ('study', 'st'), ('schema', '1')")
    c.close()
    before = _digest(st)
    for argv in (["analyze", str(st)], ["sweep", str(st), "--dataset", "digits", "--tasks", "1", "--hidden", "8"]):
        _fails(capsys, argv, "not a blackout store (a meta table but no runs table)")
    assert _digest(st) == before and not (st / "sweep.json").exists()
    with sqlite3.connect(st / "results.sqlite") as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] != "wal"


@pytest.mark.parametrize(
    "damage,message",
    [
        ("not json", "damaged stored result"),
        (json.dumps({"run_id": 5}), "run_id: expected a str, got 5"),
        (
            json.dumps({"run_id": "x", "version": "1", "config": {}, "acc": [], "blackout": {}}),
            "config.data: expected an object",
        ),
    ],
)
def test_damaged_stored_results_are_one_line_errors(study, tmp_path, capsys, damage, message):
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    with sqlite3.connect(copy / "results.sqlite") as c:
        c.execute("UPDATE runs SET result = ? WHERE status = 'done'", (damage,))
    c.close()
    _fails(capsys, ["analyze", str(copy)], message)


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze", "{s}"],
        ["analyze", "{s}", "--json", "--methods"],
        ["report", "{s}", "--out", "{o}/r.html"],
        ["export", "{s}", "--out", "{o}/r.csv"],
        ["export", "{s}", "--format", "parquet", "--out", "{o}/r.parquet"],
    ],
)
def test_reading_commands_never_change_the_store(study, tmp_path, argv):
    before = _digest(study)
    assert main([a.format(s=study, o=tmp_path) for a in argv]) == 0
    assert _digest(study) == before


def test_a_read_only_study_can_be_read(study):
    """An archived study the user cannot write: analyze, report and export (elsewhere) still work."""
    # not under pytest's base folder: every pytest session that starts meanwhile makes that folder
    # private to its owner again, which would lock the unprivileged reader out halfway
    with tempfile.TemporaryDirectory(prefix="blackout-ro-") as private:
        place = Path(private)
        ro = place / "ro"
        shutil.copytree(study, ro)
        out = place / "out"
        out.mkdir()
        for p in (ro, *ro.iterdir()):
            p.chmod(0o555 if p.is_dir() else 0o444)
        argv = [
            [sys.executable, "-m", "blackout", "analyze", str(ro)],
            [sys.executable, "-m", "blackout", "export", str(ro), "--out", str(out / "r.csv")],
            [sys.executable, "-m", "blackout", "report", str(ro), "--out", str(out / "r.html")],
        ]
        prefix = []
        if os.geteuid() == 0:  # root writes anywhere: read as an unprivileged user instead
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv to drop privileges")
            prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
            out.chmod(0o777)
            place.chmod(0o755)
        env = {**os.environ, "MPLCONFIGDIR": str(out / "mpl"), "HOME": str(out)}
        for a in argv:
            p = subprocess.run(prefix + a, capture_output=True, text=True, env=env, timeout=120)
            assert p.returncode == 0, p.stderr
        assert (out / "r.csv").read_text().startswith("run_id,") and "<html" in (out / "r.html").read_text().lower()


def test_the_report_lists_failed_runs(study, tmp_path):
    assert main(["report", str(study), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "RuntimeError: out of memory &lt;in a group of 3&gt;" in page


def test_a_results_archive_reads_like_its_study(study, tmp_path, capsys):
    """``export --format jsonl`` keeps every result whole: analyses and reports need no store."""
    import blackout

    archive = tmp_path / "s.jsonl.gz"
    assert main(["export", str(study), "--format", "jsonl", "--out", str(archive)]) == 0
    from_store = [r.to_dict() for r in blackout.Study(study).results()]
    from_archive = [r.to_dict() for r in blackout.Study(archive).results()]
    assert from_archive == from_store and len(from_archive) == 2
    capsys.readouterr()
    assert main(["analyze", str(study), "--json"]) == 0
    a = capsys.readouterr().out
    assert main(["analyze", str(archive), "--json"]) == 0
    assert capsys.readouterr().out == a
    assert main(["report", str(archive)]) == 0 and (tmp_path / "s.html").exists()
    _fails(
        capsys,
        ["sweep", str(archive), "--dataset", "digits"],
        "a results archive can be analysed and reported, not swept",
    )
    (tmp_path / "bad.jsonl").write_text('{"run_id": 3}\n')
    _fails(capsys, ["analyze", str(tmp_path / "bad.jsonl")], "bad.jsonl:1: not a blackout result")


# -- numbers past what the machine can run, wrong data, meaningless verdicts ------------------------


def test_jobs_past_what_the_machine_can_run_are_refused_before_anything_is_written(tmp_path, capsys):
    limit = 4 * (os.cpu_count() or 1)
    _fails(
        capsys,
        ["sweep", str(tmp_path / "s"), "--tasks", "2", "--jobs", str(10**11)],
        f"--jobs: expected 1 to {limit} worker processes (4 x this machine's {os.cpu_count()} cores), got 100000000000",
    )
    assert not (tmp_path / "s").exists()


def _idx_gz(arr) -> bytes:
    import gzip
    import struct

    return gzip.compress(
        struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    )


def _mnist_folder(path: Path, n: int, seed: int = 0) -> Path:
    import numpy as np

    path.mkdir(parents=True)
    (path / "t10k-images-idx3-ubyte.gz").write_bytes(
        _idx_gz(np.random.default_rng(seed).integers(0, 256, (n, 28, 28), np.uint8))
    )
    (path / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx_gz((np.arange(n) % 10).astype(np.uint8)))
    return path


def _blackout(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    import blackout

    src = str(Path(blackout.__file__).resolve().parents[1])  # this checkout's code, from any working directory
    env = {
        **os.environ,
        "BLACKOUT_DATA_CACHE": str(cwd / "cache"),
        "PYTHONPATH": os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    return subprocess.run(
        [sys.executable, "-m", "blackout", *argv], capture_output=True, text=True, timeout=180, cwd=cwd, env=env
    )


def test_a_five_image_data_folder_gets_no_verdict(tmp_path):
    folder = _mnist_folder(tmp_path / "five", 5)
    out = _blackout(
        "run", "--dataset", "mnist", "--data-dir", str(folder), "--tasks", "2", "--iterations", "1", cwd=tmp_path
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "task 1: 1 test image; a verdict needs at least 10 per task" in out.stderr
    assert out.stdout == "" and not any(tmp_path.rglob("result.json"))  # no verdict, no result


TINY_MNIST = ["--dataset", "mnist", "--tasks", "1", "--iterations", "2", "--hidden", "4", "--sharpness", "0"]
"""A run of two training steps on MNIST-format files: enough to be recorded with its data's identity."""


def test_the_same_settings_on_other_data_get_another_run_id(tmp_path, monkeypatch, capsys):
    """Two folders of MNIST-format images (same shape and count, other pixels), and a copy of the first."""
    monkeypatch.setenv("BLACKOUT_DATA_CACHE", str(tmp_path / "cache"))
    a = _mnist_folder(tmp_path / "a", 100, seed=0)
    _mnist_folder(tmp_path / "b", 100, seed=1)
    shutil.copytree(a, tmp_path / "a2")
    ids = {}
    for name in ("a", "b", "a2"):
        code = main(
            ["run", *TINY_MNIST, "--data-dir", str(tmp_path / name), "--quiet", "--out", str(tmp_path / f"out-{name}")]
        )
        assert code == 0, capsys.readouterr().err
        result = json.loads((tmp_path / f"out-{name}" / "result.json").read_text())
        assert result["config"]["data"]["data_id"].startswith("28x28 80+20 ")
        ids[name] = result["run_id"]
    assert ids["a"] == ids["a2"] != ids["b"]


def test_a_study_swept_on_one_data_set_is_not_extended_silently_with_another(tmp_path, monkeypatch, capsys):
    """The same grid on other images is other runs: the second sweep is refused as another grid."""
    monkeypatch.setenv("BLACKOUT_DATA_CACHE", str(tmp_path / "cache"))
    grid = [*TINY_MNIST, "--jobs", "1"]
    study = tmp_path / "s"
    assert main(["sweep", str(study), "--data-dir", str(_mnist_folder(tmp_path / "a", 100, seed=0)), *grid]) == 0
    capsys.readouterr()
    _fails(
        capsys,
        ["sweep", str(study), "--data-dir", str(_mnist_folder(tmp_path / "b", 100, seed=1)), *grid],
        "this study already holds 1 runs of another grid",
    )
    [row] = Store(study / "results.sqlite", "s").rows()
    assert row["config"]["data"]["data_id"].startswith("28x28 80+20 ")
