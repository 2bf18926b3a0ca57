"""EWC-L1, EWC-prox, SI, MAS, replay, A-GEM and LwF: each update against an independent computation,
and each method's effect on forgetting against plain SGD."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blackout.cli import main
from blackout.config import RunConfig
from blackout.errors import ConfigError
from blackout.methods import METHODS
from blackout.methods.lwf import distillation
from blackout.methods.mas import output_norm_importance
from blackout.methods.replay import Memory, project
from blackout.train import run
from tests.conftest import jiggle, method_setup, small


def _setup(method, **kw):
    return method_setup(method, tasks=3, fisher_samples=40, **kw)


def _numpy(ts):
    return [t.detach().numpy().astype(np.float64) for t in ts]


def test_ewc_l1_penalty_and_proximal_soft_threshold():
    cfg, stream, model, m = _setup("ewc-l1", lam=3.0, lr=0.1)
    m.consolidate(model, stream.tasks[0], stream)
    A, mu = _numpy(m.A), _numpy(m.mu)
    jiggle(model, 0.3)
    theta = _numpy(model.parameters())
    expect = 3.0 * sum((a * np.abs(t - u)).sum() for a, t, u in zip(A, theta, mu))
    assert m.penalty_value(model) == pytest.approx(expect, rel=1e-5)
    assert m.penalty(model, None, stream.tasks[1]).item() == pytest.approx(expect, rel=1e-5)

    prox = METHODS["ewc-l1"](small(method="ewc-l1", lam=3.0, lr=0.1, prox=True, fisher_samples=40), model)
    prox.A, prox.mu, prox.tasks_seen = [a.clone() for a in m.A], [u.clone() for u in m.mu], 1
    assert prox.penalty(model, None, stream.tasks[1]) is None  # applied by the step, not the gradient
    prox.after_step(model)
    for got, t, a, u in zip(_numpy(model.parameters()), theta, A, mu):
        d = t - u
        np.testing.assert_allclose(got, u + np.sign(d) * np.maximum(np.abs(d) - 0.1 * 3.0 * a, 0), rtol=1e-5, atol=1e-7)
    held = sum(int((np.abs(got - u) == 0).sum()) for got, u in zip(_numpy(model.parameters()), mu))
    assert held > 0  # the L1 prox holds weights exactly at their anchor


def test_ewc_prox_step_is_the_closed_form_minimiser():
    cfg, stream, model, m = _setup("ewc-prox", lam=50.0, lr=0.1)
    fishers, anchors = [], []
    for t in range(2):
        jiggle(model, seed=t)
        anchors.append(_numpy(model.parameters()))
        before = _numpy(m.A)
        m.consolidate(model, stream.tasks[t], stream)
        fishers.append([a - b for a, b in zip(_numpy(m.A), before)])
    jiggle(model, seed=7)
    theta_prime = _numpy(model.parameters())
    m.after_step(model)
    got = _numpy(model.parameters())
    c = 0.1 * 50.0
    for i, g in enumerate(got):
        A = sum(f[i] for f in fishers)
        B = sum(f[i] * th[i] for f, th in zip(fishers, anchors))
        np.testing.assert_allclose(g, (theta_prime[i] + c * B) / (1 + c * A), rtol=1e-5, atol=1e-7)
        # stationarity of (1/2lr)|theta - theta'|^2 + (lam/2) sum A (theta - mu)^2, mu = B/A
        grad = (g - theta_prime[i]) / 0.1 + 50.0 * (A * g - B)
        assert np.abs(grad).max() < 1e-3 * max(1.0, np.abs((g - theta_prime[i]) / 0.1).max())
    assert m.penalty(model, None, stream.tasks[1]) is None


def test_ewc_prox_and_l1_prox_refuse_adam():
    with pytest.raises(ConfigError, match="optimizer: ewc-prox needs sgd"):
        small(method="ewc-prox", optimizer="adam")
    with pytest.raises(ConfigError, match="optimizer: ewc-l1 with prox needs sgd"):
        small(method="ewc-l1", prox=True, optimizer="adam")
    assert main(["run", "--method", "ewc-prox", "--optimizer", "adam"]) == 2


def test_si_importance_is_the_hand_integrated_path():
    """Two tasks of a few SGD steps; omega integrated here from the task-loss gradients alone."""
    cfg = RunConfig.from_flat({"method": "si", "lam": 2.0, "xi": 0.1, "lr": 0.5, "hidden": (4,)})
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    si = METHODS["si"](cfg, model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, generator=g), torch.randint(0, 2, (16,), generator=g)
    expected_A = [np.zeros(p.shape) for p in model.parameters()]
    for task in range(2):
        start = _numpy(model.parameters())
        omega = [np.zeros(p.shape) for p in model.parameters()]
        xt = x + task
        for _ in range(5):
            before = _numpy(model.parameters())
            task_loss = F.cross_entropy(model(xt), y)
            g_task = _numpy(torch.autograd.grad(task_loss, list(model.parameters())))
            loss = F.cross_entropy(model(xt), y)
            pen = si.penalty(model, xt, None)
            opt.zero_grad()
            (loss if pen is None else loss + pen).backward()
            opt.step()
            si.after_step(model)
            after = _numpy(model.parameters())
            omega = [w - gt * (a - b) for w, gt, a, b in zip(omega, g_task, after, before)]
        end = _numpy(model.parameters())
        expected_A = [A + 2 * w / ((e - s) ** 2 + 0.1) for A, w, e, s in zip(expected_A, omega, end, start)]
        si.consolidate(model, None, None)
        for got, exp in zip(_numpy(si.A), expected_A):
            np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-7)


def test_mas_importance_against_a_per_sample_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    x = torch.randn(12, 1, 2, 3)
    head = lambda z: z[:, 1:3]
    got = output_norm_importance(model, x, head)
    expect = [torch.zeros_like(p) for p in model.parameters()]
    for n in range(12):
        out = head(model(x[n : n + 1])).pow(2).sum()
        for e, g in zip(expect, torch.autograd.grad(out, list(model.parameters()))):
            e += g.abs() / 12
    for a, b in zip(got, expect):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_reservoir_holds_every_item_with_equal_probability():
    N, M, trials = 50, 10, 2000
    counts = np.zeros(N)
    for s in range(trials):
        mem = Memory(M, torch.Generator().manual_seed(s))
        mem.add(0, torch.arange(0, 7))  # in chunks, as tasks arrive
        mem.add(1, torch.arange(7, 30))
        mem.add(2, torch.arange(30, 50))
        assert len(mem) == M and mem.seen == N
        counts[mem.row.numpy()] += 1
    p = M / N
    sd = np.sqrt(trials * p * (1 - p))
    assert np.all(np.abs(counts - trials * p) < 5 * sd), counts  # 5 sigma: cannot flake, does catch bias
    small_mem = Memory(10, torch.Generator().manual_seed(0))
    small_mem.add(0, torch.arange(4))
    assert len(small_mem) == 4 and sorted(small_mem.row.tolist()) == [0, 1, 2, 3]


def test_replay_loss_is_the_mean_over_its_memory_batch():
    cfg, stream, model, rep = _setup("replay", memory=30, batch_size=20)
    rep.consolidate(model, stream.tasks[0], stream)
    rep.consolidate(model, stream.tasks[1], stream)
    state = rep.gen.get_state()
    got = rep.memory_loss(model)
    rep.gen.set_state(state)
    tasks, rows = rep.memory.draw(20)
    xs, ys = zip(*(stream.batch(stream.tasks[t], "train", r[None]) for t, r in zip(tasks.tolist(), rows)))
    assert got.item() == pytest.approx(F.cross_entropy(model(torch.cat(xs)), torch.cat(ys)).item(), rel=1e-6)
    assert set(tasks.tolist()) <= {0, 1} and len(rep.memory) == 30


def test_agem_projection():
    g, r = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 1.0, 1.0])
    out = project(g, r)
    dot = (1 * 0 + -2 * 1 + 0.5 * 1)
    np.testing.assert_allclose(out.numpy(), (g - dot / 2.0 * r).numpy(), rtol=1e-6)
    assert abs(torch.dot(out, r).item()) < 1e-6
    same = torch.tensor([1.0, 2.0, 0.0])
    assert project(same, r) is same  # no interference, no change


def test_lwf_distillation_and_its_stream_check():
    old, new = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.5, 1.0, 0.0]])
    T = 2.0
    p = np.exp(old.numpy() / T) / np.exp(old.numpy() / T).sum()
    logq = new.numpy() / T - np.log(np.exp(new.numpy() / T).sum())
    assert distillation(old, new, T).item() == pytest.approx(-(p * logq).sum() * T * T, rel=1e-6)
    with pytest.raises(ConfigError, match="lwf needs a multi-head split stream"):
        small(method="lwf")
    assert main(["run", "--method", "lwf", "--stream", "split"]) == 2


COMMON = dict(tasks=4, hidden=(64,), iterations=250, lr=0.05, fisher_samples=300, stop_on_blackout=False)


@pytest.fixture(scope="module")
def sgd_task1():
    return run(small(method="sgd", **COMMON)).acc[-1, 0]


@pytest.mark.parametrize("method,kw,margin", [
    ("ewc-l1", {"lam": 5.0}, 0.3),               # measured 0.82 vs sgd 0.30
    ("ewc-l1", {"lam": 5.0, "prox": True}, 0.3),  # 0.86
    ("ewc-prox", {"lam": 15.0}, 0.25),           # 0.72
    ("si", {"lam": 20.0}, 0.25),                 # 0.74
    ("mas", {"lam": 1.0}, 0.3),                  # 0.84
    ("replay", {"memory": 200}, 0.3),            # 0.84
    ("agem", {"memory": 200}, 0.12),             # 0.53
])
def test_method_forgets_task_one_less_than_sgd(method, kw, margin, sgd_task1):
    got = run(small(method=method, **COMMON, **kw)).acc[-1, 0]
    assert got > sgd_task1 + margin, (method, got, sgd_task1)


def test_lwf_keeps_old_heads_better_than_sgd():
    """Multi-head split digits: mean accuracy of tasks 1-3 after task 5, measured 0.968 vs sgd 0.918."""
    c = dict(stream="split", multi_head=True, tasks=5, hidden=(32,), iterations=300, lr=0.3,
             activation="tanh", stop_on_blackout=False)
    sgd = run(small(method="sgd", **c)).acc[-1, :3].mean()
    lwf = run(small(method="lwf", lam=1.0, **c)).acc[-1, :3].mean()
    assert lwf > sgd + 0.02, (lwf, sgd)
