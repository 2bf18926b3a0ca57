"""The run loop: reproducibility, the accuracy matrix, stopping at blackout, evaluation."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from blackout.data.sources import load_dataset
from blackout.data.streams import Stream
from blackout.models import build_model
from blackout.train import batches, evaluate, run
from tests.conftest import small


def test_same_config_and_seed_give_an_identical_matrix():
    a, b = run(small(tasks=3)), run(small(tasks=3))
    assert np.array_equal(a.acc, b.acc, equal_nan=True)
    assert [d["train_loss"] for d in a.diagnostics] == [d["train_loss"] for d in b.diagnostics]
    c = run(small(tasks=3, seed=1))
    assert not np.array_equal(a.acc, c.acc, equal_nan=True)


def test_result_records_config_version_seed_and_shapes():
    cfg = small(tasks=3, seed=4, hidden=(20, 10))
    r = run(cfg)
    assert r.run_id == cfg.run_id and r.seed == 4 and r.config == cfg.to_dict() and r.version
    assert r.n_params == (64 * 20 + 20) + (20 * 10 + 10) + (10 * 10 + 10)
    assert r.acc.shape == (3, 3)
    assert np.isnan(r.acc[0, 1]) and not np.isnan(r.acc[2, 0])  # lower triangle only without eval_all
    assert [d["task"] for d in r.diagnostics] == [1, 2, 3]
    assert r.diagnostics[0]["stability"] == 0.0 and r.diagnostics[1]["stability"] > 0


def test_eval_all_fills_the_matrix_and_gives_forward_transfer():
    r = run(small(tasks=3, eval_all=True))
    assert not np.isnan(r.acc).any()
    assert np.isfinite(r.metrics["fwt"])


def test_stop_on_blackout_and_run_on():
    stop = run(small(tasks=4, lam=1e4, lr=0.5))  # stability number far past 2 at task 2
    assert stop.blackout == {**stop.blackout, "task": 2, "cause": "diverged"} and stop.tasks_run == 2
    # divergence ends the run even when asked to run on: NaN weights cannot learn again
    assert run(small(tasks=4, lam=1e4, lr=0.5, stop_on_blackout=False)).tasks_run == 2
    # a collapse (dead units, finite weights) stops by default, and runs on when asked
    collapsed = run(small(tasks=4, method="sgd", lr=50.0))
    assert collapsed.blackout["cause"] == "collapsed" and collapsed.tasks_run == collapsed.blackout["task"]
    on = run(small(tasks=4, method="sgd", lr=50.0, stop_on_blackout=False))
    assert on.tasks_run == 4 and on.blackout["task"] == collapsed.blackout["task"]


def test_evaluate_agrees_with_scikit_learn():
    cfg = small(tasks=2)
    data = load_dataset("digits")
    stream = Stream(cfg.data, data, 0)
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 8, 8), 10)
    ours = evaluate(model, stream, stream.tasks)
    for task, acc in zip(stream.tasks, ours):
        x, y = stream.batch(task, "test")
        pred = model(x).argmax(1)
        assert acc == pytest.approx(accuracy_score(y.numpy(), pred.numpy()))


def test_batches_cover_each_epoch_once():
    g = torch.Generator().manual_seed(0)
    got = list(batches(10, 4, 6, g))
    assert [len(b) for b in got] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat(got[:3]).tolist()) == list(range(10))
    assert sorted(torch.cat(got[3:]).tolist()) == list(range(10))


@pytest.mark.parametrize("kw", [
    {"arch": "cnn", "channels": (4, 8), "hidden": (16,), "iterations": 300, "lr": 0.5},
    {"stream": "split", "tasks": 2, "multi_head": True},
    {"stream": "rotated", "angle_step": 45.0, "optimizer": "adam", "lr": 0.01},
    {"epochs": 8.0, "fisher_labels": "expected"},
    {"method": "online-ewc", "gamma": 0.9, "fisher_labels": "empirical"},
])
def test_every_stream_model_and_option_learns_its_first_task(kw):
    base = {"tasks": 2, "iterations": 200}
    base.update(kw)
    r = run(small(**base))
    assert r.acc[0, 0] > 0.6, r.acc
    assert r.n_params == sum(p.numel() for p in build_model(small(**base).model, (1, 8, 8),
                                                                  10 if not kw.get("multi_head") else 4).parameters())


def test_seed_blog_setup_on_real_mnist(mnist_dir):
    """The seed study's network on the real MNIST test images, shortened: task 1 is learned well."""
    from blackout.config import RunConfig
    from blackout.presets import run_preset

    cfg = RunConfig.from_flat({**run_preset("seed-blog"), "tasks": 2, "iterations": 300})
    r = run(cfg, data_dir=str(mnist_dir))
    assert r.n_params == 784 * 50 + 50 + 50 * 10 + 10
    assert r.data["n_train"] == 8000 and "8,000 train / 2,000 test" in r.data["note"]
    assert r.acc[0, 0] > 0.85 and r.acc[1, 1] > 0.8
