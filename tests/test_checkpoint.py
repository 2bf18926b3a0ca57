"""Checkpoints: a group stopped between tasks and resumed from its checkpoint gives the numbers of an
uninterrupted run, for every method, a stacked group a member has left, a CNN, gates and a kept Adam;
a checkpoint of other code is not used; a killed sweep resumes its run where the checkpoint left it."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from blackout.experiment import checkpoint
from blackout.experiment.checkpoint import Checkpoint
from blackout.experiment.methods import registry
from blackout.experiment.result import finite_or_none
from blackout.experiment.train import Experiment, run_group
from tests.conftest import small


class Stop(Exception):
    pass


def same(a, b):
    """Every number a run records, but its clocks."""
    assert a.run_id == b.run_id
    assert np.array_equal(a.acc, b.acc, equal_nan=True), (a.acc, b.acc)
    assert len(a.diagnostics) == len(b.diagnostics)
    for da, db in zip(a.diagnostics, b.diagnostics):
        assert set(da) == set(db)
        for k in set(da) - {"seconds"}:
            assert finite_or_none(da[k]) == finite_or_none(db[k]), (k, da["task"], da[k], db[k])
    assert {k: finite_or_none(v) for k, v in a.metrics.items()} == {k: finite_or_none(v) for k, v in b.metrics.items()}
    assert a.verdict == b.verdict and a.tasks_run == b.tasks_run


def interrupted(configs, folder, monkeypatch, at: int):
    """``run_group`` stopped as task ``at`` (0-based) begins, then run again from its checkpoint."""
    monkeypatch.setattr(checkpoint, "EVERY", 0.0)  # a checkpoint after every task
    train = Experiment.train_task

    def stop_at(self, t):
        if t == at:
            raise Stop
        return train(self, t)

    with monkeypatch.context() as m:
        m.setattr(Experiment, "train_task", stop_at)
        with pytest.raises(Stop):
            run_group(configs, checkpoints=folder)
    assert list(folder.glob("*.pt"))  # left for the next attempt
    resumed = run_group(configs, checkpoints=folder)
    assert not list(folder.iterdir())  # a finished group leaves no checkpoint behind
    return resumed


@pytest.mark.parametrize("method", sorted(registry()))
def test_a_resumed_run_equals_an_uninterrupted_one_for_every_method(method, tmp_path, monkeypatch):
    kw = {"stream": "split", "multi_head": True} if method == "lwf" else {}
    seeds = (0, 1) if registry()[method].batchable and method != "lwf" else (0,)
    configs = [small(method=method, tasks=4, iterations=60, seed=s, **kw) for s in seeds]
    straight = run_group(configs)
    resumed = interrupted(configs, tmp_path, monkeypatch, at=2)
    for a, b in zip(straight, resumed):
        same(a, b)
        assert b.environment["resumed_at_task"] == [3] and "resumed_at_task" not in a.environment
        assert b.timings["total"] >= b.timings["train"] > 0


# a member that diverges (and leaves the stack) before the stop, one far from the limit, gates, a
# kept Adam, a CNN
CASES = {
    "a stack a member has left": [
        small(tasks=8, hidden=(24,), iterations=120, lr=0.2, lam=40.0, seed=0),
        small(tasks=8, hidden=(24,), iterations=120, lr=0.2, lam=5.0, seed=1),
    ],
    "gated": [small(tasks=5, iterations=60, gating=0.8, seed=s) for s in (0, 1)],
    "kept Adam": [small(tasks=5, iterations=60, optimizer="adam", lr=0.001, keep_optimizer=True, method="si")],
    "cnn": [small(tasks=4, iterations=40, arch="cnn", channels=(4, 8), hidden=(16,))],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_resumed_group_equals_an_uninterrupted_one(case, tmp_path, monkeypatch):
    configs = CASES[case]
    straight = run_group(configs)
    at = 5 if case == "a stack a member has left" else 2
    if case == "a stack a member has left":
        assert straight[0].verdict.cause == "diverged" and straight[0].tasks_run < at < straight[1].tasks_run
    for a, b in zip(straight, interrupted(configs, tmp_path, monkeypatch, at)):
        same(a, b)


def test_a_checkpoint_of_other_code_or_a_damaged_one_is_not_used(tmp_path, monkeypatch, capsys):
    configs = [small(tasks=3, iterations=60)]
    monkeypatch.setattr(checkpoint, "EVERY", 0.0)
    saved = Checkpoint(tmp_path, configs)
    ex = Experiment(configs)
    ex.train_task(0)
    ex.next_task = 2  # claims two tasks done
    saved.header = {**saved.header, "numerics": -1}
    saved.save(ex)
    assert Experiment.resume(Checkpoint(tmp_path, configs), None) is None  # another numerics version
    fresh = run_group(configs, checkpoints=tmp_path)
    assert "resumed_at_task" not in fresh[0].environment
    same(fresh[0], run_group(configs)[0])
    saved.file.write_bytes(b"cut short")
    assert Experiment.resume(Checkpoint(tmp_path, configs), None) is None
    assert f"{saved.file}: not resumed, training from task 1" in capsys.readouterr().err
    assert Checkpoint(tmp_path, configs[::-1]).file == saved.file  # named by the set of run ids
    assert Checkpoint(tmp_path, [small(tasks=4, iterations=60)]).file != saved.file


def test_a_killed_sweep_resumes_its_run_from_the_checkpoint(tmp_path):
    """The way a user meets it: a sweep process killed mid-run, started again, finishes the run from
    its last checkpoint, and the numbers equal an uninterrupted sweep's."""
    spec = tmp_path / "s.toml"
    spec.write_text('[base]\ndataset = "digits"\ntasks = 8\niterations = 200\nhidden = [64]\nlam = 5\nseed = 3\n')
    env = {**os.environ, "BLACKOUT_CHECKPOINT_SECONDS": "0"}

    def sweep(study, **kw):
        argv = [sys.executable, "-m", "blackout", "sweep", str(study), "--spec", str(spec), "--jobs", "1"]
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    first = sweep(tmp_path / "a", start_new_session=True)
    folder = tmp_path / "a" / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(folder.glob("*.pt")) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    assert list(folder.glob("*.pt")), first.communicate()
    os.killpg(first.pid, signal.SIGKILL)  # the sweep and its worker, mid-run
    first.wait()
    out, err = sweep(tmp_path / "a").communicate(timeout=600)
    assert not list(folder.glob("*.pt")), err
    assert "[1/1]" in err and "1 runs · 0 already done · 1 ran · 0 failed" in out, err  # the killed run counted
    out_b, err_b = sweep(tmp_path / "b").communicate(timeout=600)
    runs = {}
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        argv = [
            sys.executable,
            "-m",
            "blackout",
            "export",
            str(tmp_path / name),
            "--format",
            "jsonl",
            "--out",
            str(out),
        ]
        subprocess.run(argv, capture_output=True, check=True)
        runs[name] = json.loads(out.read_text().splitlines()[0])
    a, b = runs["a"], runs["b"]
    assert a["environment"]["resumed_at_task"][0] > 1 and "resumed_at_task" not in b["environment"]
    assert a["acc"] == b["acc"] and a["metrics"] == b["metrics"]
    assert [d["train_loss"] for d in a["diagnostics"]] == [d["train_loss"] for d in b["diagnostics"]]
