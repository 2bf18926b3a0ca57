"""The run loop: reproducibility, the accuracy matrix, stopping at blackout, evaluation."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from blackout.experiment.models import cnn
from blackout.experiment.train import Experiment, batches, run
from tests.conftest import member_module, small


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
    assert r.environment["torch"] == torch.__version__.split("+")[0] or r.environment["torch"].startswith(
        torch.__version__[:4]
    )


def test_eval_all_fills_the_matrix_and_gives_forward_transfer():
    r = run(small(tasks=3, eval_all=True))
    assert not np.isnan(r.acc).any()
    assert np.isfinite(r.metrics["fwt"])


def test_stop_on_blackout_and_run_on():
    stop = run(small(tasks=4, lam=1e4, lr=0.5))  # stability number far past 2 at task 2
    assert (stop.verdict.task, stop.verdict.cause) == (2, "diverged") and stop.tasks_run == 2
    # divergence ends the run even when asked to run on: NaN weights cannot learn again
    assert run(small(tasks=4, lam=1e4, lr=0.5, stop_on_blackout=False)).tasks_run == 2
    # a collapse (task 1 learned, then every task at chance with finite weights: an L1 subgradient so
    # strong that its steps scramble the network) stops by default, and runs on when asked
    collapsed = run(small(tasks=4, method="ewc-l1", lam=1e4))
    assert (
        collapsed.acc[0, 0] > 0.8
        and collapsed.verdict.cause == "collapsed"
        and collapsed.tasks_run == collapsed.verdict.task
    )
    on = run(small(tasks=4, method="ewc-l1", lam=1e4, stop_on_blackout=False))
    assert on.tasks_run == 4 and on.verdict.task == collapsed.verdict.task


def test_evaluate_agrees_with_scikit_learn_for_every_member():
    ex = Experiment([small(tasks=2, seed=s) for s in (0, 1)])
    ours = ex.evaluate_tasks(range(2))
    for m in range(2):
        model, stream = member_module(ex.net, m), ex.streams.members[m]
        for j, task in enumerate(stream.tasks):
            x, y = stream.batch(task, "test")
            pred = model(x).argmax(1)
            assert ours[m, j] == pytest.approx(accuracy_score(y.numpy(), pred.numpy()))


def test_batches_cover_each_epoch_once():
    g = torch.Generator().manual_seed(0)
    got = list(batches(10, 4, 6, g))
    assert [len(b) for b in got] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat(got[:3]).tolist()) == list(range(10))
    assert sorted(torch.cat(got[3:]).tolist()) == list(range(10))


@pytest.mark.parametrize(
    "kw",
    [
        {"arch": "cnn", "channels": (4, 8), "hidden": (16,), "iterations": 300, "lr": 0.5},
        {"stream": "split", "tasks": 2, "multi_head": True},
        {"stream": "rotated", "angle_step": 45.0, "optimizer": "adam", "lr": 0.01},
        {"epochs": 8.0, "fisher_labels": "expected"},
        {"method": "online-ewc", "gamma": 0.9, "fisher_labels": "empirical"},
    ],
)
def test_every_stream_model_and_option_learns_its_first_task(kw):
    base = {"tasks": 2, "iterations": 200}
    base.update(kw)
    cfg = small(**base)
    r = run(cfg)
    assert r.acc[0, 0] > 0.6, r.acc
    from blackout.config import n_params_estimate

    n_out = 10 if not kw.get("multi_head") else 4
    if cfg.model.arch == "cnn":
        assert r.n_params == sum(
            p.numel() for p in cnn((1, 8, 8), cfg.model.channels, cfg.model.hidden, n_out, "relu").parameters()
        )
    assert r.n_params == n_params_estimate(cfg)


def test_seed_blog_setup_on_real_mnist(mnist_dir):
    """The seed study's network on the real MNIST test images, shortened: task 1 is learned well."""
    from blackout.config import RunConfig
    from blackout.presets import run_preset

    cfg = RunConfig.from_flat({**run_preset("seed-blog"), "tasks": 2, "iterations": 300})
    r = run(cfg, data_dir=str(mnist_dir))
    assert r.n_params == 784 * 50 + 50 + 50 * 10 + 10
    assert r.data["n_train"] == 8000 and "8,000 train / 2,000 test" in r.data["note"]
    assert r.acc[0, 0] > 0.85 and r.acc[1, 1] > 0.8


def test_a_permuted_task_is_evaluated_by_permuting_weights_within_rounding():
    """Evaluating a permuted task permutes the first layer's weights, not the images: the same
    products summed in another order, so logits agree within rounding and, on trained networks,
    the counts of correct answers agree (at most one borderline image per task may flip)."""
    ex = Experiment([small(tasks=3, seed=s, eval_all=True) for s in (0, 1)])
    for t in range(2):
        ex.train_task(t)
    n = ex.streams.n_rows(0, "test")
    counts = np.rint(ex.evaluate_tasks(range(3)) * n)
    for m, stream in enumerate(ex.streams.members):
        for j, task in enumerate(stream.tasks):
            assert task.perm is not None and not torch.equal(task.perm, torch.arange(64))
            x, y = stream.batch(task, "test")  # each image gathered through the permutation
            raw, _ = stream.batch(task, "test", transform=False)
            gathered = ex.net.member(m)(x[None])[0]
            permuted = ex.net.member(m, task.perm)(raw[None])[0]
            assert torch.allclose(permuted, gathered, rtol=1e-5, atol=1e-5)
            assert not torch.allclose(ex.net.member(m)(raw[None])[0], gathered, atol=1e-2)
            assert abs(counts[m, j] - int((gathered.argmax(-1) == y).sum())) <= 1


def test_a_result_records_the_processor_that_computed_it():
    """Float32 kernels, so a run's last bits, differ between processors: a result names its own, as lscpu does."""
    import os
    import shutil
    import subprocess

    from blackout.experiment.result import environment

    if shutil.which("lscpu") is None:
        pytest.skip("lscpu is not installed")
    out = subprocess.run(["lscpu"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}).stdout
    models = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")]
    if not models:
        pytest.skip("lscpu names no model here")
    assert environment()["cpu"] == models[0]
