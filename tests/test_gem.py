"""GEM: its projection against an independent solution of the same quadratic programme, its memory
of equal slots per task, and its one-line refusals."""

import itertools
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize

from blackout.errors import ConfigError
from blackout.experiment.methods.gem import Slots, project_qp_, solve_dual
from blackout.experiment.step import SGD, loss_grads, update
from tests.commandline import blackout
from tests.conftest import member_module, method_setup, small


def closest_feasible(g: np.ndarray, G: np.ndarray) -> np.ndarray:
    """argmin ||z - g|| subject to G z >= 0, by enumerating active sets: the answer is g projected onto
    {z : G_S z = 0} for some set S of constraints, and the closest of the feasible such projections."""
    best = g if (G @ g >= -1e-12).all() else None
    for n in range(1, len(G) + 1):
        for S in itertools.combinations(range(len(G)), n):
            A = G[list(S)]
            z = g - A.T @ np.linalg.lstsq(A @ A.T, A @ g, rcond=None)[0]
            if (G @ z >= -1e-9).all() and (best is None or np.linalg.norm(z - g) < np.linalg.norm(best - g)):
                best = z
    return best


def _problem(seed, K=3, sizes=((2, 3), (4,))):
    """A member's gradient (per parameter, M = 1) and K past tasks' gradients, some interfering."""
    rng = np.random.default_rng(seed)
    grads = [torch.tensor(rng.standard_normal((1, *s))) for s in sizes]
    refs = [[torch.tensor(rng.standard_normal((1, *s))) for s in sizes] for _ in range(K)]
    return grads, refs


def _flat(ts):
    return torch.cat([t[0].reshape(-1) for t in ts]).numpy()


@pytest.mark.parametrize("seed", range(12))
def test_projection_is_the_closest_gradient_that_raises_no_old_loss(seed):
    """memory_strength 0 and no ridge: GEM's Eq. 10, solved here by active-set enumeration and by SLSQP."""
    grads, refs = _problem(seed)
    g, G = _flat(grads), np.stack([_flat(r) for r in refs])
    hit = project_qp_(grads, refs, torch.tensor([0.0]), ridge=0.0)
    got = _flat(grads)
    assert bool(hit[0]) == bool((G @ g < 0).any())
    assert (G @ got >= -1e-8).all()  # no past task's loss rises, to first order
    np.testing.assert_allclose(got, closest_feasible(g, G), atol=1e-7)
    slsqp = minimize(
        lambda z: 0.5 * np.sum((z - g) ** 2),
        g,
        jac=lambda z: z - g,
        constraints=[{"type": "ineq", "fun": lambda z: G @ z, "jac": lambda z: G}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    np.testing.assert_allclose(got, slsqp.x, atol=1e-5)


def test_memory_strength_projects_the_gradient_plus_that_share_of_the_old_ones():
    """v >= m is the same projection applied to g + m sum_k g_k (substitute v = u + m in the dual)."""
    checked = 0
    for seed in range(20):
        grads, refs = _problem(seed)
        g, G = _flat(grads), np.stack([_flat(r) for r in refs])
        if not (G @ g < 0).any():
            continue
        project_qp_(grads, refs, torch.tensor([0.5]), ridge=0.0)
        np.testing.assert_allclose(_flat(grads), closest_feasible(g + 0.5 * G.sum(0), G), atol=1e-7)
        checked += 1
    assert checked >= 10


def dual_by_enumeration(P: np.ndarray, c: np.ndarray, margin: float) -> np.ndarray:
    """argmin 1/2 v^T P v + c^T v subject to v >= margin (P positive definite), from the KKT conditions:
    the variables off their bound solve their block of P v = -c, those on it have a non-negative gradient."""
    K = len(c)
    for n in range(K + 1):
        for free in itertools.combinations(range(K), n):
            v = np.full(K, float(margin))
            f, b = list(free), [i for i in range(K) if i not in free]
            if f:
                v[f] = np.linalg.solve(P[np.ix_(f, f)], -c[f] - P[np.ix_(f, b)] @ v[b])
            if (v >= margin - 1e-12).all() and ((P @ v + c)[b] >= -1e-9).all():
                return v
    raise AssertionError("no KKT point")


def test_the_dual_with_its_ridge_against_the_kkt_conditions():
    rng = np.random.default_rng(5)
    G, g = rng.standard_normal((4, 30)), rng.standard_normal(30)
    G[3] = G[0] + G[1]  # linearly dependent memories: G G^T is singular, the ridge keeps the dual solvable
    gram, gdot = G @ G.T, G @ g
    for margin in (0.0, 0.5):
        v = solve_dual(gram, gdot, margin)
        np.testing.assert_allclose(v, dual_by_enumeration(gram + 1e-3 * np.eye(4), gdot, margin), atol=1e-8)
        assert (v >= margin - 1e-12).all()


def test_no_projection_where_no_old_task_interferes():
    """Every g . g_k >= 0: the gradient is left exactly as it is, memory_strength or not; members apart."""
    g = torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.0, 2.0]])
    r1 = torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, -1.0]])  # member 1's second memory interferes
    r2 = torch.tensor([[1.0, -3.0, 0.0], [1.0, -3.0, 0.0]])
    grads = [g.clone()]
    hit = project_qp_(grads, [[r1], [r2]], torch.tensor([0.5, 0.0]), ridge=0.0)
    assert hit.tolist() == [False, True]
    assert torch.equal(grads[0][0], g[0])
    G = torch.stack([r1[1], r2[1]]).double().numpy()
    np.testing.assert_allclose(grads[0][1].numpy(), closest_feasible(g[1].double().numpy(), G), atol=1e-6)


def test_slots_split_the_memory_equally_and_keep_each_task_s_first_rows():
    mem = Slots(10, torch.Generator().manual_seed(0))
    mem.add(0, torch.arange(100, 130))
    assert mem.row.tolist() == list(range(100, 110)) and set(mem.task.tolist()) == {0}
    mem.add(1, torch.arange(200, 204))  # a task with fewer rows than its share keeps all of them
    assert mem.slots[0][1].tolist() == list(range(100, 105)) and mem.slots[1][1].tolist() == list(range(200, 204))
    mem.add(2, torch.arange(300, 330))
    assert [r.tolist() for _, r in mem.slots] == [[100, 101, 102], [200, 201, 202], [300, 301, 302]]
    assert len(mem) == 9 and mem.task.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and mem.seen == 64


def test_gem_projects_each_member_s_gradient_against_its_slots():
    """The step's gradient is G^T v + g with G recomputed here, per member, from each past task's slot."""
    configs, streams, net, gem = method_setup("gem", memory=40, batch_size=20, seeds=(0, 1), memory_strength=0.5)
    for t in (0, 1):
        gem.begin_task(net, streams.task(t), streams)
        gem.consolidate(net, streams.task(t), streams)
    assert [len(r) for _, r in gem.memories[0].slots] == [20, 20]
    assert [d["memory_samples"] for d in gem.memory()] == [40, 40]
    gem.begin_task(net, streams.task(2), streams)
    projected = 0
    for step in range(6):
        x, y = streams.batch(2, [torch.arange(20 * step, 20 * step + 20)] * 2)
        assert gem.batch(net, x, y, streams.task(2))[0] is x  # no rehearsal unless asked
        _, grads, _ = loss_grads(net, gem, x, y, streams.task(2))
        before = torch.cat([q.flatten(1) for q in grads], 1).double()
        gem.adjust(net, grads, streams.task(2))
        for m in range(2):
            model = member_module(net, m)
            s = streams.members[m]
            G = []
            for k, rows in gem.memories[m].slots:
                xm, ym = s.batch(s.tasks[k], "train", rows)
                loss = F.cross_entropy(model(xm), ym)
                G.append(torch.cat([q.reshape(-1) for q in torch.autograd.grad(loss, list(model.parameters()))]))
            G = torch.stack(G).double()
            g = before[m]
            got = torch.cat([q[m].reshape(-1) for q in grads]).double()
            if (G @ g < 0).any():
                v = solve_dual((G @ G.T).numpy(), (G @ g).numpy(), 0.5)
                want = g + G.T @ torch.from_numpy(v)
                projected += 1
            else:
                want = g
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        update(net, gem, SGD(net.params(), gem.lr * 5), x, y, streams.task(2))
    assert projected > 0  # the memories' losses did conflict with some steps


def test_rehearse_adds_a_memory_batch_as_replay_does():
    configs, streams, net, gem = method_setup("gem", memory=30, batch_size=20, rehearse=True)
    gem.begin_task(net, streams.task(0), streams)
    gem.consolidate(net, streams.task(0), streams)
    gem.begin_task(net, streams.task(1), streams)
    x, y = streams.batch(1, [torch.arange(20)])
    state = gem.gens[0].get_state()
    xb, yb = gem.batch(net, x, y, streams.task(1))
    gen = torch.Generator()
    gen.set_state(state)
    rows = gem.memories[0].row[torch.randperm(30, generator=gen)[:20]]
    s = streams.members[0]
    torch.testing.assert_close(xb[0], torch.cat([x[0], s.batch(s.tasks[0], "train", rows)[0]]))


def test_with_a_head_per_task_each_memory_s_gradient_is_its_own_head_s():
    """Without rehearsal each past task's loss is taken on its own head, so a multi-head stream works:
    its gradient reaches no other head's output weights."""
    configs, streams, net, gem = method_setup("gem", tasks=3, memory=40, stream="split", multi_head=True)
    for t in (0, 1):
        gem.begin_task(net, streams.task(t), streams)
        gem.consolidate(net, streams.task(t), streams)
    gem.begin_task(net, streams.task(2), streams)
    refs = gem.references()
    assert [past.index for past, _, _ in refs] == [0, 1]
    for past, x, y in refs:
        lo, hi = past.head_range
        _, grads, _ = loss_grads(net, gem, x, y, past)
        out_w = grads[-2][0]  # the last layer's weights
        assert out_w.shape == (10, 32)  # (outputs, hidden)
        assert out_w[lo:hi].abs().sum() > 0
        assert out_w[:lo].abs().sum() == 0 and out_w[hi:].abs().sum() == 0


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"memory_strength": -0.1}, r"^memory_strength: expected memory_strength >= 0"),
        ({"rehearse": True, "stream": "split", "multi_head": True}, r"^method: gem needs a single-head stream"),
        ({"memory": 0}, r"^memory: expected at least 1 sample"),
    ],
)
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(ConfigError, match=message):
        small(method="gem", **settings)


def test_without_quadprog_gem_is_refused_in_one_line_naming_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "quadprog", None)  # import quadprog now raises ImportError
    with pytest.raises(ConfigError, match=r'^method: gem needs quadprog.*pip install "blackout\[gem\]"$'):
        small(method="gem")
    (tmp_path / "quadprog.py").write_text("raise ImportError('No module named quadprog')\n")  # found first
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    p = blackout("run", "--method", "gem", "--dataset", "digits", "--tasks", "2")
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("blackout: error: method: gem needs quadprog") and len(p.stderr.splitlines()) == 1
    assert 'pip install "blackout[gem]"' in p.stderr


def test_gem_gives_the_same_numbers_alone_and_in_a_group():
    """Members with their own memory_strength, and one that diverges and leaves the stack, each as alone."""
    from blackout.experiment.train import run, run_group

    base = {"tasks": 3, "hidden": (16,), "iterations": 60, "lr": 0.1, "stop_on_blackout": False, "memory": 60}
    kw = [{"memory_strength": 0.0}, {}, {"lr": 1e38}]  # the last diverges in task 1
    configs = [small(method="gem", seed=s, **{**base, **k}) for s, k in enumerate(kw)]
    group = run_group(configs)
    for c, member in zip(configs, group):
        alone = run(c)
        assert np.array_equal(alone.acc, member.acc, equal_nan=True)
        held = [[d.get("memory_samples") for d in r.diagnostics] for r in (alone, member)]
        assert held[0] == held[1]
    assert group[2].verdict.cause == "diverged"
    assert [d["memory_samples"] for d in group[0].diagnostics] == [60, 60, 60]
    assert not np.array_equal(group[0].acc, group[1].acc)


def test_blackout_methods_lists_gem_with_its_paper_and_settings():
    p = blackout("methods")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("gem "))
    assert "Lopez-Paz & Ranzato, NeurIPS 2017" in lines[at]
    assert lines[at + 1].split() == ["settings:", "memory,", "memory_strength,", "rehearse"]
