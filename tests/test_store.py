"""The results store: resumable, shared by concurrent sweeps, and refusing files that are not its own."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blackout.errors import StoreError
from blackout.study.store import SCHEMA_VERSION, Store
from tests.factory import make_result


def rid(i: int) -> str:
    return f"{i:016x}"


def config(i: int = 0, hidden=(50, 50)) -> dict:
    return make_result([[0.9], [0.8, 0.9]], seed=i, hidden=hidden).config


def result(i: int, avg_acc: float = 0.73, task=None, cause=None) -> dict:
    d = make_result(
        [[0.97], [0.5, 0.96]],
        blackout=task,
        cause=cause,
        seed=i,
        hidden=(50, 50),
        n_params=39760,
        stability=[0.4, 0.3],
        retained=[1, 2],
    ).to_dict()
    d["run_id"], d["version"] = rid(i), "0.1.0"
    d["metrics"]["avg_acc"] = avg_acc
    return d


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "study" / "results.sqlite", "study")
    yield s
    s.close()


# -- round trip ----------------------------------------------------------------------------
def test_add_claim_finish_results_round_trip(store):
    assert store.add((rid(i), config(i)) for i in range(3)) == 3
    assert store.add((rid(i), config(i)) for i in range(5)) == 2  # idempotent: only the new two
    assert store.status_counts() == {"pending": 5, "running": 0, "done": 0, "failed": 0}
    assert len(store.rows()) == 5

    assert store.claim(rid(1))
    assert not store.claim(rid(1))  # already running
    (row,) = store.rows("running")
    assert row["run_id"] == rid(1) and row["owner"] == f"{socket.gethostname()}:{os.getpid()}"
    assert row["config"] == config(1) and row["attempts"] == 1 and row["started"] is not None

    store.finish(rid(1), result(1, avg_acc=0.8, task=2, cause="collapsed"), 1.25)
    assert not store.claim(rid(1))  # done is never re-claimed
    (row,) = store.rows("done")
    assert (row["seconds"], row["version"], row["seed"], row["blackout_task"], row["avg_acc"]) == (
        1.25,
        "0.1.0",
        1,
        2,
        0.8,
    )
    assert row["result"] == result(1, avg_acc=0.8, task=2, cause="collapsed")
    assert [r.to_dict() for r in store.results()] == [result(1, avg_acc=0.8, task=2, cause="collapsed")]
    assert store.todo() == [rid(0), rid(2), rid(3), rid(4)]
    assert store.status_counts() == {"pending": 4, "running": 0, "done": 1, "failed": 0}

    # a reopened store sees the same rows
    store.close()
    again = Store(store.path, "study", create=False)
    assert [r.to_dict() for r in again.results()] == [result(1, avg_acc=0.8, task=2, cause="collapsed")]
    assert again.add([(rid(1), config(1))]) == 0
    again.close()


def test_todo_filters_and_keeps_given_order(store):
    store.add((rid(i), config(i)) for i in range(4))
    store.claim(rid(0))
    store.finish(rid(0), result(0), 1.0)
    store.claim(rid(1))
    store.fail(rid(1), "boom")
    store.claim(rid(2))  # running: not to do
    assert store.todo() == [rid(1), rid(3)]
    assert store.todo([rid(3), rid(0), rid(1), rid(3), "ffffffffffffffff"]) == [rid(3), rid(1)]


def test_fail_records_message_and_run_is_reclaimable(store):
    store.add([(rid(7), config(7))])
    assert store.claim(rid(7))
    store.fail(rid(7), "RuntimeError: CUDA out of memory", 3.5)
    (row,) = store.rows("failed")
    assert row["error"] == "RuntimeError: CUDA out of memory" and row["seconds"] == 3.5
    assert row["attempts"] == 1 and row["result"] is None
    assert store.todo() == [rid(7)]

    assert store.claim(rid(7))
    (row,) = store.rows("running")
    assert row["attempts"] == 2 and row["error"] is None
    store.fail(rid(7), "again")
    assert store.claim(rid(7))
    store.finish(rid(7), result(7), 2.0)
    (row,) = store.rows()
    assert (row["status"], row["attempts"], row["error"]) == ("done", 3, None)
    assert store.todo() == []


def test_finish_keeps_first_result_and_unknown_ids_raise(store):
    store.add([(rid(1), config(1))])
    store.claim(rid(1))
    store.finish(rid(1), result(1, avg_acc=0.5), 1.0)
    store.finish(rid(1), result(1, avg_acc=0.9), 1.0)
    store.fail(rid(1), "late failure")
    assert store.rows()[0]["avg_acc"] == 0.5 and store.rows()[0]["status"] == "done"
    for call in (lambda: store.claim(rid(2)), lambda: store.finish(rid(2), {}, 1.0), lambda: store.fail(rid(2), "x")):
        with pytest.raises(KeyError):
            call()


def test_non_finite_and_numpy_values_are_stored_as_json(store):
    np = pytest.importorskip("numpy")
    store.add([(rid(1), config(1))])
    store.claim(rid(1))
    r = result(1)
    r["metrics"]["avg_acc"] = np.float32(0.5)
    r["metrics"]["bwt"] = float("nan")
    r["seed"] = np.int64(1)
    store.finish(rid(1), r, 1.0)
    row = store.rows()[0]
    assert row["avg_acc"] == 0.5 and row["seed"] == 1 and row["result"]["metrics"]["bwt"] is None


# -- concurrency ---------------------------------------------------------------------------
def _race_worker(path: str, ids: list[str], log: str, start) -> None:
    start.wait(30)
    store = Store(path, "race")  # all workers race to create the store too
    store.add((r, {"train": {"seed": i}}) for i, r in enumerate(ids))
    claimed = []
    for r in store.todo(ids):
        if store.claim(r):
            claimed.append(r)
            time.sleep(0.003)
            store.finish(r, {"run_id": r, "by": os.getpid()}, 0.003)
    store.close()
    Path(log).write_text(json.dumps({"pid": os.getpid(), "claimed": claimed}))


def test_concurrent_processes_finish_each_run_exactly_once(tmp_path):
    path = tmp_path / "results.sqlite"
    ids = [rid(i) for i in range(40)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    logs = [tmp_path / f"worker{k}.json" for k in range(4)]
    procs = [ctx.Process(target=_race_worker, args=(str(path), ids, str(log), start)) for log in logs]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]

    claims = [json.loads(log.read_text()) for log in logs]
    claimed = [r for c in claims for r in c["claimed"]]
    assert len(claimed) == len(set(claimed)) == 40  # disjoint, and together every run
    assert set(claimed) == set(ids)
    by = {r: c["pid"] for c in claims for r in c["claimed"]}

    with Store(path, "race", create=False) as store:
        rows = store.rows()
        assert len(rows) == 40 and store.status_counts()["done"] == 40
        for row in rows:
            assert row["attempts"] == 1
            assert row["result"]["by"] == by[row["run_id"]]
            assert row["owner"].endswith(f":{by[row['run_id']]}")


# -- killed worker -------------------------------------------------------------------------
_CLAIM_AND_HANG = """
import sys, time
from blackout.study.store import Store
s = Store(sys.argv[1], "study")
assert s.claim(sys.argv[2])
print("claimed", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_reclaim_stale_returns_killed_workers_runs_to_pending(store):
    store.add((rid(i), config(i)) for i in range(6))
    store.claim(rid(0))
    store.finish(rid(0), result(0), 1.0)
    store.claim(rid(1))
    store.fail(rid(1), "boom")
    store.claim(rid(2))  # running in this (live) process
    store.claim(rid(3))  # running on another host, whose liveness is unknowable here
    raw = sqlite3.connect(store.path)
    raw.execute("UPDATE runs SET owner = 'elsewhere.example:999999' WHERE run_id = ?", (rid(3),))
    raw.commit()
    raw.close()

    child = subprocess.Popen(
        [sys.executable, "-c", _CLAIM_AND_HANG, str(store.path), rid(4)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "claimed"
        assert store.reclaim_stale() == 0  # its owner is still alive
        running = {r["run_id"]: r for r in store.rows("running")}
        assert running[rid(4)]["owner"] == f"{socket.gethostname()}:{child.pid}"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    before = {r["run_id"]: r for r in store.rows()}
    assert store.reclaim_stale() == 1
    after = {r["run_id"]: r for r in store.rows()}
    assert after[rid(4)]["status"] == "pending" and after[rid(4)]["owner"] is None
    assert after[rid(4)]["started"] is None and after[rid(4)]["attempts"] == 1
    assert {k: v for k, v in after.items() if k != rid(4)} == {k: v for k, v in before.items() if k != rid(4)}
    assert store.reclaim_stale() == 0
    assert store.todo() == [rid(1), rid(4), rid(5)]
    assert store.claim(rid(4))


# -- refusing files that are not ours ------------------------------------------------------
def test_other_study_is_refused_and_file_untouched(tmp_path):
    path = tmp_path / "results.sqlite"
    with Store(path, "alpha") as s:
        s.add([(rid(1), config(1))])
    data = path.read_bytes()
    with pytest.raises(StoreError, match=r"belongs to study 'alpha', not 'beta'") as e:
        Store(path, "beta")
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == data


def test_newer_schema_is_refused_and_file_bytes_unchanged(tmp_path):
    path = tmp_path / "results.sqlite"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    raw.executemany("INSERT INTO meta VALUES (?, ?)", [("study", "s"), ("schema", "99")])
    raw.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, shiny_new_column BLOB)")
    raw.commit()
    raw.close()
    data = path.read_bytes()
    with pytest.raises(StoreError, match=r"newer schema 99; upgrade blackout") as e:
        Store(path, "s")
    assert str(path) in str(e.value)
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"]
    assert SCHEMA_VERSION < 99


def test_non_sqlite_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"run_id,status\nabc,done\n" * 50)
    data = path.read_bytes()
    with pytest.raises(StoreError, match="not a SQLite database") as e:
        Store(path, "s")
    assert str(path) in str(e.value)
    assert path.read_bytes() == data


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE songs (title TEXT)")
    raw.commit()
    raw.close()
    data = path.read_bytes()
    with pytest.raises(StoreError, match="not a blackout store"):
        Store(path, "s")
    assert path.read_bytes() == data


def test_missing_store_without_create_is_refused(tmp_path):
    path = tmp_path / "nope" / "results.sqlite"
    with pytest.raises(StoreError, match="no results store"):
        Store(path, "s", create=False)
    assert not path.exists() and not path.parent.exists()


def test_store_uses_wal_while_written_and_rests_without_companions(store):
    store.add([(rid(0), config(0))])
    raw = sqlite3.connect(store.path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert dict(raw.execute("SELECT key, value FROM meta"))["schema"] == str(SCHEMA_VERSION)
    raw.close()
    store.close()  # the last writer: the store goes back to rest, readable without -wal or -shm
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["results.sqlite"]
    raw = sqlite3.connect(store.path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    raw.close()


# -- export --------------------------------------------------------------------------------
def _three_runs(store):
    store.add((rid(i), config(i)) for i in range(3))
    store.claim(rid(0))
    store.finish(rid(0), result(0, avg_acc=0.73, task=2, cause="collapsed"), 1.5)
    store.claim(rid(1))
    store.fail(rid(1), 'ValueError: bad, "quoted"\nsecond line', 0.25)


def test_export_csv(store, tmp_path):
    _three_runs(store)
    out = store.export(tmp_path / "runs.csv", "csv")
    assert out == tmp_path / "runs.csv"
    with open(out, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = {r["run_id"]: r for r in reader}
    assert header[:6] == ["run_id", "status", "error", "seconds", "version", "seed"]
    assert header[-11:] == [
        "avg_acc",
        "bwt",
        "fwt",
        "forgetting",
        "blackout_task",
        "blackout_cause",
        "retained",
        "tasks_run",
        "n_params",
        "acc",
        "diagnostics",
    ]
    expected = [f"{section}.{k}" for section, values in config(0).items() for k in values]
    assert header[6:-11] == expected and "method.lam" in expected and "train.seed" in expected
    assert list(rows) == [rid(0), rid(1), rid(2)]

    done = rows[rid(0)]
    assert (done["status"], done["error"], float(done["seconds"]), done["version"], done["seed"]) == (
        "done",
        "",
        1.5,
        "0.1.0",
        "0",
    )
    assert done["model.hidden"] == "50,50" and done["method.lam"] == "15.0" and done["train.eval_all"] == "False"
    assert float(done["avg_acc"]) == 0.73 and float(done["bwt"]) == -0.47 and float(done["forgetting"]) == 0.47
    assert (done["blackout_task"], done["blackout_cause"], done["retained"]) == ("2", "collapsed", "2")
    assert (done["tasks_run"], done["n_params"]) == ("2", "39760")
    assert json.loads(done["acc"]) == [[0.97, None], [0.5, 0.96]]
    assert json.loads(done["diagnostics"])[0] == {"task": 1, "train_loss": 0.5, "stability": 0.4, "new_task_acc": 0.97}

    failed = rows[rid(1)]
    assert failed["status"] == "failed" and failed["error"] == 'ValueError: bad, "quoted"\nsecond line'
    assert float(failed["seconds"]) == 0.25 and failed["avg_acc"] == "" and failed["acc"] == ""
    assert failed["train.seed"] == "1" and failed["model.hidden"] == "50,50"

    pending = rows[rid(2)]
    assert pending["status"] == "pending" and pending["seconds"] == "" and pending["data.dataset"] == "digits"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_parquet(store, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    _three_runs(store)
    out = store.export(tmp_path / "runs.parquet", "parquet")
    table = pq.read_table(out)
    assert table.num_rows == 3
    assert str(table.schema.field("avg_acc").type) == "double"
    assert str(table.schema.field("model.hidden").type) == "string"
    assert str(table.schema.field("train.seed").type) == "int64"
    rows = {r["run_id"]: r for r in table.to_pylist()}
    done = rows[rid(0)]
    assert done["avg_acc"] == 0.73 and done["blackout_task"] == 2 and done["model.hidden"] == "50,50"
    assert done["train.eval_all"] is False and json.loads(done["acc"]) == [[0.97, None], [0.5, 0.96]]
    assert rows[rid(1)]["error"].startswith("ValueError") and rows[rid(1)]["avg_acc"] is None
    assert rows[rid(2)]["status"] == "pending"


def test_export_parquet_without_pyarrow_says_so(store, tmp_path, monkeypatch):
    _three_runs(store)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(StoreError, match=r"needs pyarrow"):
        store.export(tmp_path / "runs.parquet", "parquet")
    assert not (tmp_path / "runs.parquet").exists()


def test_export_rejects_unknown_format(store, tmp_path):
    with pytest.raises(ValueError, match="xlsx"):
        store.export(tmp_path / "runs.xlsx", "xlsx")
