"""Damaged and foreign stores, and damaged stored results: one line and exit code 2 from every reader.

A stored result is checked by one validation (``Result.from_dict``) whether it comes from a store
row or an archive line, and whatever it is read for: an analysis, a report or any export format.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from blackout.cli import main
from blackout.experiment.result import Result
from blackout.study.store import Store
from tests.commandline import blackout, refused, run_commands
from tests.factory import make_result, make_study


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("study") / "s", failed="RuntimeError: out of memory")


READERS = (
    ["analyze", "{s}"],
    ["report", "{s}", "--out", "{o}/r.html"],
    ["export", "{s}", "--out", "{o}/r.csv"],
    ["export", "{s}", "--format", "parquet", "--out", "{o}/r.parquet"],
    ["export", "{s}", "--format", "jsonl", "--out", "{o}/r.jsonl.gz"],
)
SWEEP = ["sweep", "{s}", "--dataset", "digits", "--tasks", "1", "--iterations", "5", "--hidden", "8", "--jobs", "1"]


def _argv(argv: list[str], s: Path, o: Path) -> list[str]:
    return [a.format(s=s, o=o) for a in argv]


# -- foreign layouts and damaged pages ---------------------------------------------------------------


def _foreign_layout(path: Path, runs_table: str) -> None:
    path.mkdir()
    with sqlite3.connect(path / "results.sqlite") as c:
        c.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        c.execute("INSERT INTO meta VALUES ('study', 'st'), ('schema', '1')")
        c.execute(runs_table)
        c.execute("INSERT INTO runs (run_id) VALUES ('a')")
    c.close()


@pytest.mark.parametrize(
    "runs_table,message",
    [
        (
            "CREATE TABLE runs (run_id TEXT, payload BLOB, status TEXT)",
            "table runs has columns run_id, payload, status",
        ),
        (
            (
                "CREATE TABLE runs (run_id TEXT PRIMARY KEY, config TEXT, status TEXT, error TEXT, owner TEXT, attempts INTEGER, "
                "created REAL, started REAL, finished REAL, seconds REAL, version TEXT, seed INTEGER, blackout_task INTEGER, "
                "avg_acc REAL, result BLOB)"
            ),
            "table runs: column result is BLOB, expected TEXT",
        ),
    ],
)
def test_a_store_with_another_table_layout_is_refused_untouched(tmp_path, runs_table, message):
    st = tmp_path / "st"
    _foreign_layout(st, runs_table)
    before = digest(st)
    for result in run_commands(*(_argv(argv, st, tmp_path) for argv in (*READERS, SWEEP))):
        refused(result, f"{st / 'results.sqlite'}: not a blackout store ({message}")
    assert digest(st) == before and sorted(os.listdir(st)) == ["results.sqlite"]


@pytest.mark.parametrize("where", [0.5, 0.75])
def test_a_store_with_overwritten_pages_is_one_line_naming_it(study, tmp_path, where):
    st = tmp_path / "st"
    shutil.copytree(study, st)
    raw = bytearray((st / "results.sqlite").read_bytes())
    at = int(len(raw) * where) // 4096 * 4096
    raw[at : at + 4096] = bytes(range(256)) * 16
    (st / "results.sqlite").write_bytes(bytes(raw))
    before = digest(st)
    for result in run_commands(*(_argv(argv, st, tmp_path) for argv in (*READERS, SWEEP))):
        refused(result, f"{st / 'results.sqlite'}: damaged store")
    assert digest(st) == before


# -- one validation of a stored result, whichever reader -----------------------------------------------


def _set(d: dict, dotted: str, value) -> dict:
    d = copy.deepcopy(d)
    *parents, last = dotted.split(".")
    node = d
    for k in parents:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return d


DAMAGE = [  # (field, value, what the one line says)
    ("tasks_run", -7, "tasks_run: expected 3 (the rows of acc), got -7"),
    ("tasks_run", "3", "tasks_run: expected 3 (the rows of acc), got '3'"),
    ("acc.1.0", "high", "acc: expected numbers in [0, 1] or null, got 'high'"),
    ("acc.2.2", 7.5, "acc: expected numbers in [0, 1] or null, got 7.5"),
    ("acc.2", [0.5], "acc: expected rows of 3 values"),
    ("metrics", [1, 2], "metrics: expected an object"),
    ("metrics.avg_acc", "high", "metrics.avg_acc: expected a number or null, got 'high'"),
    ("diagnostics", {"task": 1}, "diagnostics: expected a list of 3 objects (one per task run)"),
    ("diagnostics.0.train_loss", "low", "diagnostics[0].train_loss: expected a number, a list of numbers or null"),
    ("blackout.task", 99, "blackout.task: expected an integer from 1 to 3 or null, got 99"),
    ("blackout.cause", 3, "blackout.cause: expected 'collapsed' or 'diverged'"),
    ("blackout.learned", "no", "blackout.learned: expected true or false, got 'no'"),
    ("blackout.retained_tasks", [0, 9], "blackout.retained_tasks: expected task numbers from 1 to 3"),
    ("config.model.hidden", "wide", "config.model.hidden: expected a list of integers >= 1, got 'wide'"),
    ("config.method.method", 5, "config.method.method: expected a name, got 5"),
    ("config.data.dataset", None, "config.data.dataset: expected a name, got None"),
    ("n_params", "many", "n_params: expected an integer >= 0, got 'many'"),
    ("data", [], "data: expected an object, got []"),
    ("timings", {"total": "long"}, "timings: expected an object of numbers"),
    ("environment", "here", "environment: expected an object"),
    ("seed", True, "seed: expected an integer, got True"),
    ("version", 2, "version: expected a str, got 2"),
]


@pytest.fixture(scope="module")
def good() -> dict:
    return make_result(blackout=2, cause="collapsed", retained=[1], seed=0, hidden=(16,)).to_dict()


@pytest.mark.parametrize("field,value,message", DAMAGE)
def test_from_dict_refuses_damaged_fields(good, field, value, message):
    assert Result.from_dict(good).to_dict() == good
    with pytest.raises(ValueError) as e:
        Result.from_dict(_set(good, field, value))
    assert message in str(e.value)


def _damaged_copy(study: Path, tmp_path: Path, text: str) -> Path:
    st = tmp_path / "st"
    shutil.copytree(study, st)
    with sqlite3.connect(st / "results.sqlite") as c:
        rid = c.execute("SELECT run_id FROM runs WHERE status = 'done' ORDER BY run_id").fetchone()[0]
        c.execute("UPDATE runs SET result = ? WHERE run_id = ?", (text, rid))
    c.close()
    return st


@pytest.mark.parametrize("field,value,message", [DAMAGE[0], DAMAGE[5], DAMAGE[9], DAMAGE[13]])
def test_every_reader_refuses_a_damaged_stored_result(study, tmp_path, capsys, field, value, message):
    with Store(study / "results.sqlite", None, readonly=True) as s:
        d = s.results()[0].to_dict()
    st = _damaged_copy(study, tmp_path, json.dumps(_set(d, field, value)))
    for argv in READERS:
        capsys.readouterr()
        assert main(_argv(argv, st, tmp_path)) == 2
        err = capsys.readouterr().err
        assert err.startswith("blackout: error:") and len(err.strip().splitlines()) == 1, err
        assert f"run {d['run_id']}: damaged stored result ({message}" in err, err
    assert not any(tmp_path.glob("r.*"))


def test_a_damaged_result_in_an_archive_is_refused_like_one_in_a_store(study, tmp_path):
    assert main(["export", str(study), "--format", "jsonl", "--out", str(tmp_path / "a.jsonl.gz")]) == 0
    lines = gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes()).decode().splitlines()
    lines[1] = json.dumps(_set(json.loads(lines[1]), "tasks_run", -7))
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n")
    for result in run_commands(["analyze", tmp_path / "b.jsonl"], ["report", tmp_path / "b.jsonl"]):
        refused(result, "b.jsonl:2: not a blackout result (tasks_run: expected 3 (the rows of acc), got -7)")
    assert not (tmp_path / "b.html").exists()


def test_a_row_damaged_beyond_json_is_refused_by_every_reader(study, tmp_path):
    st = _damaged_copy(study, tmp_path, "{not json")
    p = blackout(*_argv(READERS[0], st, tmp_path))  # as a user types it
    refused((p.returncode, p.stderr), "damaged stored result")
    for result in run_commands(*(_argv(argv, st, tmp_path) for argv in READERS[1:])):
        refused(result, "damaged stored result")
