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


def test_mas_importance_sums_over_tasks_and_anchors_at_the_last_weights():
    """A = 2 (Omega_1 + Omega_2) on fisher_samples samples of each task, so (lambda/2) A = lambda Omega."""
    cfg, stream, model, mas = _setup("mas", lam=2.0)
    expect = [torch.zeros_like(p) for p in model.parameters()]
    for t in range(2):
        jiggle(model, seed=t)
        state = mas.gen.get_state()
        mas.consolidate(model, stream.tasks[t], stream)
        probe = torch.Generator()
        probe.set_state(state)
        rows = torch.randperm(len(stream.split(stream.tasks[t], "train").y), generator=probe)[:40]
        x, _ = stream.batch(stream.tasks[t], "train", rows)
        for n in range(40):
            out = model(x[n : n + 1]).pow(2).sum()
            for e, g in zip(expect, torch.autograd.grad(out, list(model.parameters()))):
                e += 2 * g.abs() / 40
    for a, e, mu, p in zip(mas.A, expect, mas.mu, model.parameters()):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-7)
        assert torch.equal(mu, p.detach())
    jiggle(model, seed=5)
    by_hand = 2.0 * sum((e / 2 * (p.detach() - mu) ** 2).sum() for e, p, mu in zip(expect, model.parameters(), mas.mu))
    assert mas.penalty_value(model) == pytest.approx(by_hand.item(), rel=1e-4)


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


def test_replay_step_follows_the_mean_over_the_concatenated_batch():
    """penalty + after_backward give the gradient of the mean loss over current and memory samples."""
    cfg, stream, model, rep = _setup("replay", memory=30, batch_size=20)
    assert rep.penalty(model, torch.zeros(20, 1, 8, 8), stream.tasks[0]) is None  # empty memory
    rep.consolidate(model, stream.tasks[0], stream)
    rep.consolidate(model, stream.tasks[1], stream)
    assert len(rep.memory) == 30 and rep.memory.seen == 2 * len(stream.split(stream.tasks[0], "train").y)
    task = stream.tasks[2]
    params = list(model.parameters())
    for b in (20, 45):  # a memory batch as large as the training batch; all 30 held when it is larger
        x, y = stream.batch(task, "train", torch.arange(b))
        state = rep.gen.get_state()
        model.zero_grad()
        (F.cross_entropy(model(x), y) + rep.penalty(model, x, task)).backward()
        rep.after_backward(model, task)
        got = [p.grad.clone() for p in params]
        rep.gen.set_state(state)
        tasks, rows = rep.memory.draw(b)
        assert len(rows) == min(b, 30)
        xs, ys = zip(*(stream.batch(stream.tasks[t], "train", r[None]) for t, r in zip(tasks.tolist(), rows)))
        mean = F.cross_entropy(model(torch.cat([x, *xs])), torch.cat([y, *ys]))  # one head: a plain concatenation
        for g, e in zip(got, torch.autograd.grad(mean, params)):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def test_agem_after_backward_projects_the_model_gradient():
    """The model's gradient becomes project(g, g_ref), g_ref recomputed here from the same memory draw."""
    cfg, stream, model, agem = _setup("agem", memory=50, batch_size=20)
    agem.consolidate(model, stream.tasks[0], stream)
    params = list(model.parameters())
    task = stream.tasks[1]
    projected = 0
    for step in range(6):
        x, y = stream.batch(task, "train", torch.arange(20 * step, 20 * step + 20))
        assert agem.penalty(model, x, task) is None
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        g = torch.cat([p.grad.reshape(-1) for p in params])
        state = agem.gen.get_state()
        agem.after_backward(model, task)
        agem.gen.set_state(state)
        tasks, rows = agem.memory.draw(20)
        xm, ym = stream.batch(stream.tasks[0], "train", rows)
        r = torch.cat([q.reshape(-1) for q in torch.autograd.grad(F.cross_entropy(model(xm), ym), params)])
        got = torch.cat([p.grad.reshape(-1) for p in params])
        torch.testing.assert_close(got, project(g, r), rtol=1e-5, atol=1e-7)
        assert torch.dot(got, r) >= -1e-6 * g.norm() * r.norm()
        projected += int(torch.dot(g, r) < 0)
        with torch.no_grad():
            for p in params:
                p.sub_(0.5 * p.grad)
    assert projected > 0  # the memory's loss did conflict with some steps


def test_agem_projection():
    g, r = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 1.0, 1.0])
    out = project(g, r)
    dot = (1 * 0 + -2 * 1 + 0.5 * 1)
    np.testing.assert_allclose(out.numpy(), (g - dot / 2.0 * r).numpy(), rtol=1e-6)
    assert abs(torch.dot(out, r).item()) < 1e-6
    same = torch.tensor([1.0, 2.0, 0.0])
    assert project(same, r) is same  # no interference, no change
    orth = torch.tensor([5.0, 1.0, -1.0])
    assert project(orth, r) is orth  # g . g_ref = 0: no change either


def test_lwf_distillation_and_its_stream_check():
    old, new = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.5, 1.0, 0.0]])
    T = 2.0
    p = np.exp(old.numpy() / T) / np.exp(old.numpy() / T).sum()
    logq = new.numpy() / T - np.log(np.exp(new.numpy() / T).sum())
    assert distillation(old, new, T).item() == pytest.approx(-(p * logq).sum() * T * T, rel=1e-6)
    for bad in ({}, {"stream": "split"}, {"stream": "permuted", "multi_head": True}):
        with pytest.raises(ConfigError, match=r"^method: lwf needs a multi-head split stream"):
            small(method="lwf", **bad)
    assert main(["run", "--method", "lwf", "--stream", "split"]) == 2


def test_lwf_penalty_sums_the_old_heads_against_the_frozen_copy():
    """Three tasks of two classes, one head each: on task 3's inputs, heads 1 and 2 distilled from the
    copies taken after tasks 1 and 2 (the latest copy); head 3 is free."""
    from blackout.data.sources import load_dataset
    from blackout.data.streams import Stream
    from blackout.models import build_model

    cfg = small(method="lwf", stream="split", multi_head=True, tasks=3, lam=0.7, temperature=3.0)
    stream = Stream(cfg.data, load_dataset("digits"), 0)
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 8, 8), stream.n_out)
    lwf = METHODS["lwf"](cfg, model)
    assert lwf.penalty(model, torch.zeros(2, 1, 8, 8), stream.tasks[0]) is None  # first task: nothing to keep
    for t in range(2):
        jiggle(model, 0.3, seed=t)
        lwf.consolidate(model, stream.tasks[t], stream)
    frozen = [p.detach().clone() for p in model.parameters()]
    jiggle(model, 0.3, seed=9)
    x, _ = stream.batch(stream.tasks[2], "train", torch.arange(16))
    got = lwf.penalty(model, x, stream.tasks[2])
    h = x.reshape(16, -1).double()
    w1, b1, w2, b2 = [f.double() for f in frozen]
    old = torch.relu(h @ w1.T + b1) @ w2.T + b2
    new = model(x).detach().double()
    expect = 0.0
    for head in (0, 1):
        po = (old[:, 2 * head : 2 * head + 2] / 3.0).softmax(-1)
        lq = (new[:, 2 * head : 2 * head + 2] / 3.0).log_softmax(-1)
        expect += -(po * lq).sum(-1).mean().item() * 9.0
    assert got.item() == pytest.approx(0.7 * expect, rel=1e-5)
    assert all(not p.requires_grad for p in lwf.old.parameters())


@pytest.mark.parametrize("settings,field", [
    ({"method": "si", "xi": 0.0}, "xi"),
    ({"method": "replay", "memory": 0}, "memory"),
    ({"method": "agem", "memory": -5}, "memory"),
    ({"method": "lwf", "stream": "split", "multi_head": True, "temperature": 0.0}, "temperature"),
    ({"method": "ewc-l1", "prox": True, "optimizer": "adam"}, "optimizer"),
    ({"method": "ewc-prox", "optimizer": "adam"}, "optimizer"),
    ({"method": "mas", "fisher_samples": 0}, "fisher_samples"),
])
def test_bad_settings_name_the_field(settings, field):
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        small(**settings)


COMMON = dict(tasks=4, hidden=(64,), iterations=250, lr=0.05, fisher_samples=300, stop_on_blackout=False)


@pytest.fixture(scope="module")
def sgd_task1():
    return run(small(method="sgd", **COMMON)).acc[-1, 0]


@pytest.mark.parametrize("method,kw,margin", [
    ("ewc-l1", {"lam": 5.0}, 0.3),
    ("ewc-l1", {"lam": 5.0, "prox": True}, 0.3),
    ("ewc-prox", {"lam": 15.0}, 0.25),
    ("si", {"lam": 20.0}, 0.25),
    ("mas", {"lam": 1.0}, 0.3),
    ("replay", {"memory": 200}, 0.3),
    ("agem", {"memory": 200}, 0.12),
])
def test_method_forgets_task_one_less_than_sgd(method, kw, margin, sgd_task1):
    """Permuted digits, 4 tasks: task 1's accuracy after task 4, seed 0 (seeds 1 and 2 in brackets).

    Measured: sgd 0.30 (0.37, 0.44); ewc-l1 0.82 (0.82, 0.81), with prox 0.86 (0.85, 0.82);
    ewc-prox 0.72 (0.78, 0.73); si 0.74 (0.81, 0.73); mas 0.84 (0.84, 0.81); replay 0.84 (0.83, 0.80);
    agem 0.53 (0.57, 0.59). The largest stability number of these settings is 1.10 (si; 1.36 at seed 2),
    so none is in the step-size-unstable regime.
    """
    res = run(small(method=method, **COMMON, **kw))
    got = res.acc[-1, 0]
    assert got > sgd_task1 + margin, (method, got, sgd_task1)
    assert all(d["stability"] is None or d["stability"] < 2 for d in res.diagnostics)


def test_lwf_keeps_old_heads_better_than_sgd():
    """Multi-head split digits, 5 tasks, seed 0. After task 5, task 1: lwf 0.917 vs sgd 0.889; tasks 1-3
    mean: 0.968 vs 0.918 (seeds 1, 2: 0.995 vs 0.981, 1.000 vs 0.902). At lam=3 and this lr=0.3 the
    summed distillation terms make the step unstable and the old heads collapse to chance instead."""
    c = dict(stream="split", multi_head=True, tasks=5, hidden=(32,), iterations=300, lr=0.3,
             activation="tanh", stop_on_blackout=False)
    sgd = run(small(method="sgd", **c)).acc[-1]
    lwf = run(small(method="lwf", lam=1.0, **c)).acc[-1]
    assert lwf[0] > sgd[0], (lwf, sgd)
    assert lwf[:3].mean() > sgd[:3].mean() + 0.02, (lwf, sgd)
