"""The plasticity methods, gating and the plasticity diagnostics against independent computations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from blackout.experiment import plasticity
from blackout.experiment.gating import task_masks
from blackout.experiment.methods.base import Step
from blackout.experiment.models import StackedMLP
from blackout.experiment.step import SGD, update
from blackout.experiment.train import run
from tests.conftest import jiggle, member_module, method_setup, small, store_rows


def _batches(streams, t, steps, b=32):
    return [streams.batch(t, [torch.arange(b * s, b * s + b)]) for s in range(steps)]


def test_l2_init_pulls_toward_the_initial_weights_from_the_first_step():
    """lambda ||theta - theta_0||^2 (Kumar et al. 2023) through autograd, against the fused step."""
    configs, streams, net, m = method_setup("l2-init", lam=0.05)
    theta0 = [p[0].detach().clone() for p in net.params()]
    model = member_module(net)
    batches = _batches(streams, 0, 15)
    opt = SGD(net.params(), m.lr)
    for x, y in batches:
        update(net, m, opt, x, y, streams.task(0))
    ref = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in batches:
        loss = F.cross_entropy(model(x[0]), y[0]) + 0.05 * sum(
            ((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), theta0)
        )
        ref.zero_grad()
        loss.backward()
        ref.step()
    for got, want in zip(net.params(), model.parameters()):
        torch.testing.assert_close(got[0].detach(), want.detach(), rtol=1e-4, atol=1e-6)
    expect = 0.05 * sum(((p[0].detach() - p0) ** 2).sum() for p, p0 in zip(net.params(), theta0))
    assert m.penalty_value(net)[0] == pytest.approx(expect.item(), rel=1e-5)
    assert m.stability()[0] == pytest.approx(0.1 * 0.05 * 2)  # constant: lr x lambda x 2


def test_shrink_perturb_before_each_task_after_the_first():
    configs, streams, net, m = method_setup("shrink-perturb", shrink=0.7, noise=0.02, seeds=(0, 1))
    before = [p.detach().clone() for p in net.params()]
    m.begin_task(net, streams.task(0), streams)
    assert all(torch.equal(a, b) for a, b in zip(before, net.params()))  # the first task starts as initialised
    states = [g.get_state() for g in m.gens]
    m.begin_task(net, streams.task(1), streams)
    gens = []
    for s in states:
        g = torch.Generator()
        g.set_state(s)
        gens.append(g)
    for p, b in zip(net.params(), before):
        eps = torch.stack([torch.randn(b.shape[1:], generator=g) for g in gens])
        torch.testing.assert_close(p.detach(), 0.7 * b + 0.02 * eps)


def test_cbp_utility_and_replacement_by_hand():
    """Contribution utility, maturity, the running replacement count, and a replacement that keeps the
    unit's mean contribution in the next layer's bias (Dohare et al. 2024)."""
    configs, streams, net, m = method_setup("cbp", hidden=(6,), replacement_rate=0.2, maturity=2, utility_decay=0.9)
    x, _ = streams.batch(0, [torch.arange(32)])
    util, mean, replaced_at = torch.zeros(6), torch.zeros(6), None
    for step in range(3):
        _, inputs = net.forward_cached(x)
        h = inputs[1][0]
        w_out = net.weights[1][0].detach().clone()
        out_before = net(x)[0].detach()
        keep_w = net.weights[0][0].detach().clone()
        m.after_step(net, Step(None, inputs))
        util = 0.9 * util + 0.1 * h.abs().mean(0) * w_out.abs().mean(0)
        mean = 0.9 * mean + 0.1 * h.mean(0)
        age = step + 1
        changed = (net.weights[0][0].detach() != keep_w).any(1)
        if age > 2 and replaced_at is None:  # 6 mature units x 0.2 = 1.2: one unit replaced now
            assert int(changed.sum()) == 1
            i = int(changed.nonzero())
            corrected = util / (1 - 0.9**age)
            assert corrected[i] == corrected.min()  # a least useful unit (ties: any of them)
            assert torch.all(net.weights[1][0][:, i] == 0) and net.biases[0][0, i] == 0
            assert net.weights[0][0][i].abs().max() <= 1 / np.sqrt(64)
            # the output loses the unit's own contribution and gains its mean one
            out_after = net(x)[0].detach()
            want = out_before - h[:, i : i + 1] * w_out[:, i] + mean[i] / (1 - 0.9**age) * w_out[:, i]
            torch.testing.assert_close(out_after, want, rtol=1e-5, atol=1e-5)
            replaced_at, util[i], mean[i] = step, 0.0, 0.0
        else:
            assert not changed.any()
        torch.testing.assert_close(m.util[0][0], util, rtol=1e-5, atol=1e-7)
    assert replaced_at == 2 and m.replaced == [1]
    # the fraction carries over: 0.2 left, plus 5 mature units x 0.2 = 1.2 -> one more unit next step
    _, inputs = net.forward_cached(x)
    m.after_step(net, Step(None, inputs))
    assert m.replaced == [2] and float(m.count[0][0]) == pytest.approx(0.2, abs=1e-6)


def test_online_ewc_prox_applies_the_proximal_step_of_the_decayed_importance():
    configs, streams, net, m = method_setup("online-ewc-prox", lam=40.0, gamma=0.5, fisher_samples=30)
    for t in range(2):
        jiggle(net, seed=t)
        m.begin_task(net, streams.task(t), streams)
        m.consolidate(net, streams.task(t), streams)
    A, mu = [a[0].clone() for a in m.A], [u[0].clone() for u in m.mu]
    assert not m.gradient_penalty and m.maps()[0] is None
    jiggle(net, seed=5)
    theta = [p[0].detach().clone() for p in net.params()]
    for p, (c, d) in zip(net.params(), m.maps()[1]):
        with torch.no_grad():
            torch.addcmul(d, c, p, out=p)
    for p, t, a, u in zip(net.params(), theta, A, mu):
        torch.testing.assert_close(p[0].detach(), (t + 0.1 * 40.0 * a * u) / (1 + 0.1 * 40.0 * a), rtol=1e-5, atol=1e-7)


def test_ewc_capped_never_lets_the_stability_number_pass_its_cap():
    common = dict(tasks=6, hidden=(24,), iterations=120, lr=0.2, lam=40.0)
    ewc = run(small(method="ewc", **common))
    capped = run(small(method="ewc-capped", cap=1.5, **common))
    assert ewc.verdict.cause == "diverged"  # the same strength without the cap diverges
    assert capped.verdict.task is None and capped.tasks_run == 6
    assert max(d["stability"] for d in capped.diagnostics) <= 1.5 + 1e-5
    assert max(d["importance_max"] * 0.2 * 40.0 for d in capped.diagnostics) > 1.5  # the cap did bind


def test_gating_silences_a_task_s_units_in_training_and_evaluation():
    masks = task_masks([50, 20], tasks=3, gating=0.8, seed=4)
    assert [int(m.sum()) for m in masks[0]] == [10, 4]
    assert not torch.equal(masks[0][0], masks[1][0])  # each task its own units
    r = run(small(gating=0.8, tasks=3, hidden=(40,), method="sgd"))
    assert r.acc[0, 0] > 0.5 and all(d["dead_units"] < 0.5 for d in r.diagnostics)  # ungated units counted only
    from blackout.experiment.train import Experiment

    ex = Experiment([small(gating=0.8, tasks=2, hidden=(40,), method="sgd")])
    w0 = ex.net.weights[0].detach().clone()
    ex.train_task(0)
    moved = (ex.net.weights[0].detach() != w0).any(2)[0]
    keep = task_masks([40], tasks=2, gating=0.8, seed=0)[0][0] > 0
    assert torch.equal(moved, keep)  # only task 1's own units learned


def test_plasticity_measures_against_numpy():
    net = StackedMLP((8, 6, 3), "relu", seeds=[0])
    with torch.no_grad():
        net.biases[0][0, :2] = -100.0  # two units that never fire: dead
    x = torch.randn(1, 40, 8, generator=torch.Generator().manual_seed(1))
    got = plasticity.measure(net, x)[0]
    h = np.maximum(x[0].numpy() @ net.weights[0][0].detach().numpy().T + net.biases[0][0].detach().numpy(), 0)
    assert got["dead_units"] == pytest.approx(np.mean((h <= 0).all(0)))
    assert got["dead_units"] >= 2 / 6
    s = np.linalg.svd(h.astype(np.float64), compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    assert got["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert got["weight_norm"] == pytest.approx(
        [float(np.linalg.norm(w[0].detach().numpy())) for w in net.weights], rel=1e-6
    )
    tanh = StackedMLP((8, 6, 3), "tanh", seeds=[0])
    with torch.no_grad():
        tanh.weights[0][0, 0] = 0.0  # one unit held at its upper bound for every input
        tanh.biases[0][0, 0] = 50.0
    t = plasticity.measure(tanh, x)[0]
    assert t["saturated_units"] == pytest.approx(1 / 6) and t["dead_units"] == 0.0


def test_the_keep_learning_preset_runs_every_setting_and_resumes_after_an_interrupt(tmp_path):
    """The whole preset (every method, gating included), shrunk to the digits, 2 short tasks and one
    seed: stopped with SIGTERM after its first finished runs, then resumed to the end."""
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    study = tmp_path / "kl"
    cmd = [
        sys.executable,
        "-m",
        "blackout",
        "sweep",
        str(study),
        "--preset",
        "keep-learning",
        "--dataset",
        "digits",
        "--tasks",
        "2",
        "--iterations",
        "30",
        "--hidden",
        "16",
        "--seeds",
        "0",
        "--jobs",
        "2",
        "--sharpness",
        "0",
    ]
    check = subprocess.run([*cmd, "--check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    total = int(check.stdout.split()[0])
    assert total == 43  # 40 settings without gating, 3 gated
    db = study / "results.sqlite"

    def done() -> int:
        return len(store_rows(db, "done"))

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while done() < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    first = done()
    assert code in (0, 130) and first >= 1, proc.stderr.read()
    rest = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rest.returncode == 0, rest.stderr
    assert f"{first} already done" in rest.stdout and "0 failed" in rest.stdout
    assert done() == total
    with sqlite3.connect(db) as c:
        methods = {m for (m,) in c.execute("SELECT DISTINCT json_extract(config, '$.method.method') FROM runs")}
        gated = c.execute("SELECT count(*) FROM runs WHERE json_extract(config, '$.model.gating') > 0").fetchone()[0]
    assert (
        methods
        == {
            "sgd",
            "l2",
            "ewc",
            "online-ewc",
            "ewc-l1",
            "ewc-prox",
            "si",
            "mas",
            "replay",
            "agem",
            "online-ewc-prox",
            "ewc-capped",
            "l2-init",
            "shrink-perturb",
            "cbp",
        }
        and gated == 3
    )
