"""Projection methods (GPM) against independent computations: the energy criterion, the projected step,
and what the projection promises (an old task's layer outputs do not move)."""

import math

import numpy as np
import pytest
import torch

from blackout.errors import ConfigError
from blackout.experiment.methods import registry
from blackout.experiment.methods.gpm import grow
from blackout.experiment.step import SGD, loss_grads, update
from blackout.experiment.train import run
from tests.conftest import member_module, method_setup, small


def _official_rank(R, U, threshold):
    """The number of directions the official GPM code (update_GPM, later tasks) adds, in numpy."""
    total = (R**2).sum()
    hat = R - U @ (U.T @ R)
    _, S, _ = np.linalg.svd(hat, full_matrices=False)
    accumulated = (total - (S**2).sum()) / total
    r = 0
    for ratio in S**2 / total:
        if accumulated >= threshold:
            break
        accumulated += ratio
        r += 1
    return r


def _projector(U):
    return U @ U.T


def test_energy_criterion_matches_a_direct_svd():
    g = np.random.default_rng(0)
    d = 30
    R1 = g.normal(size=(d, 8)) @ g.normal(size=(8, 40)) + 0.05 * g.normal(size=(d, 40))  # about rank 8
    U, e = grow(
        torch.zeros(d, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64), torch.from_numpy(R1), 0.9, d
    )
    # Eq. 5: the fewest leading singular directions of R1 holding 90% of its energy
    V, S, _ = np.linalg.svd(R1, full_matrices=False)
    k = int(np.argmax(np.cumsum(S**2) / (S**2).sum() >= 0.9)) + 1
    assert U.shape[1] == k == _official_rank(R1, np.zeros((d, 0)), 0.9)
    np.testing.assert_allclose(_projector(U.numpy()), _projector(V[:, :k]), atol=1e-10)
    np.testing.assert_allclose(e.numpy(), S[:k] ** 2, rtol=1e-10)
    # Eq. 9 on a second task: directions of the residual only, counted with what U already explains
    R2 = 0.5 * R1[:, :20] + g.normal(size=(d, 5)) @ g.normal(size=(5, 20))
    U2, _ = grow(U, e, torch.from_numpy(R2), 0.97, d)
    k2 = _official_rank(R2, U.numpy(), 0.97)
    assert 0 < k2 and U2.shape[1] == k + k2
    np.testing.assert_allclose(U2.numpy().T @ U2.numpy(), np.eye(k + k2), atol=1e-10)
    hat = R2 - _projector(U.numpy()) @ R2
    Vh, Sh, _ = np.linalg.svd(hat, full_matrices=False)
    np.testing.assert_allclose(_projector(U2.numpy()), _projector(np.hstack([U.numpy(), Vh[:, :k2]])), atol=1e-8)
    explained = ((_projector(U2.numpy()) @ R2) ** 2).sum() / (R2**2).sum()
    assert explained >= 0.97
    # a cap keeps the directions of most energy
    _, e3 = grow(U, e, torch.from_numpy(R2), 0.97, k + 1)
    order = np.argsort(-np.concatenate([S[:k] ** 2, Sh[:k2] ** 2]), kind="stable")[: k + 1]
    np.testing.assert_allclose(
        np.sort(e3.numpy()), np.sort(np.concatenate([S[:k] ** 2, Sh[:k2] ** 2])[order]), rtol=1e-8
    )


def test_each_member_s_gradient_is_projected_out_of_its_own_basis():
    """Two stacked members with different thresholds: each step's [W b] gradient has no component in
    its member's stored input subspace, and is g - g U U^T with U rebuilt here from that member's samples."""
    _, streams, net, _ = method_setup("sgd", seeds=(0, 1))
    configs = [
        small(method="gpm", seed=0, threshold=0.9, gpm_samples=40),
        small(method="gpm", seed=1, threshold=0.99, threshold_hidden=0.9, gpm_samples=40),
    ]
    gpm = registry()["gpm"](configs, net)
    states = [gen.get_state() for gen in gpm.gens]
    info = gpm.consolidate(net, streams.task(0), streams)
    x, y = streams.batch(1, [torch.arange(32)] * 2)
    _, grads, _ = loss_grads(net, gpm, x, y, streams.task(1))
    before = [g.clone() for g in grads]
    gpm.adjust(net, grads, streams.task(1))
    for m, (cfg, state) in enumerate(zip(configs, states)):
        gen = torch.Generator()
        gen.set_state(state)
        s = streams.members[m]
        xs, _ = s.batch(s.tasks[0], "train", torch.randperm(streams.n_rows(0), generator=gen)[:40])
        h = xs.reshape(40, -1).double().numpy()
        for l, (w, b) in enumerate(zip(net.weights, net.biases)):
            R = np.hstack([h, np.ones((40, 1))]).T
            eps = cfg.method.threshold if l == 0 else cfg.method.threshold_hidden
            V, S, _ = np.linalg.svd(R, full_matrices=False)
            k = int(np.argmax(np.cumsum(S**2) / (S**2).sum() >= eps)) + 1
            U = V[:, :k]
            assert info[m]["subspace_use"][l] == pytest.approx(k / R.shape[0])
            g0 = np.hstack([before[2 * l][m].double().numpy(), before[2 * l + 1][m].double().numpy()[:, None]])
            g1 = np.hstack([grads[2 * l][m].double().numpy(), grads[2 * l + 1][m].double().numpy()[:, None]])
            np.testing.assert_allclose(g1, g0 - g0 @ U @ U.T, atol=1e-5 * np.abs(g0).max())
            assert np.abs(g1 @ U).max() < 1e-5 * np.abs(g0).max()
            assert np.abs(g1).max() > 0.1 * np.abs(g0).max()  # the step is not simply zeroed
            h = np.maximum(h @ w[m].double().detach().numpy().T + b[m].double().detach().numpy(), 0)


def test_projected_training_leaves_the_old_task_s_layer_outputs_unchanged():
    """With every direction of the task-1 inputs kept (threshold 1), 150 projected steps on task 2 move
    the weights but not the network's outputs on those inputs."""
    _, streams, net, gpm = method_setup("gpm", threshold=1.0, threshold_hidden=1.0, gpm_samples=40)
    state = gpm.gens[0].get_state()
    gpm.consolidate(net, streams.task(0), streams)
    gen = torch.Generator()
    gen.set_state(state)
    s = streams.members[0]
    xs, _ = s.batch(s.tasks[0], "train", torch.randperm(streams.n_rows(0), generator=gen)[:40])
    with torch.no_grad():
        out = member_module(net)(xs)
    start = [p.detach().clone() for p in net.params()]
    opt = SGD(net.params(), gpm.lr)
    for step in range(150):
        x, y = streams.batch(1, [torch.arange(step * 8 % 1000, step * 8 % 1000 + 32)])
        update(net, gpm, opt, x, y, streams.task(1))
    moved = max(float((p.detach() - p0).abs().max()) for p, p0 in zip(net.params(), start))
    with torch.no_grad():
        after = member_module(net)(xs)
    assert moved > 0.05
    torch.testing.assert_close(after, out, atol=1e-4, rtol=0)


COMMON = {"tasks": 2, "hidden": (64,), "iterations": 250, "lr": 0.05, "stop_on_blackout": False}


def test_gpm_keeps_task_one_where_sgd_forgets_it():
    """Permuted digits, 2 tasks: GPM's task-1 accuracy falls by 0.028 (the 5% of the first layer's input
    energy left outside its basis), plain SGD's by 0.33; both still learn task 2."""
    sgd = run(small(method="sgd", **COMMON)).acc
    res = run(small(method="gpm", **COMMON))
    gpm = res.acc
    assert sgd[0, 0] - sgd[1, 0] > 0.25, sgd
    assert abs(gpm[1, 0] - gpm[0, 0]) <= 0.05, gpm
    assert gpm[1, 1] > 0.8 and sgd[1, 1] > 0.8
    use = [d["subspace_use"] for d in res.diagnostics]
    assert all(0 < u <= 1 for row in use for u in row) and use[1][0] > use[0][0]


@pytest.mark.parametrize(
    "settings,field",
    [
        ({"method": "gpm", "arch": "cnn"}, "method"),
        ({"method": "gpm", "optimizer": "adam"}, "optimizer"),
        ({"method": "gpm", "threshold": 0.0}, "threshold"),
        ({"method": "gpm", "max_basis": 1.5}, "max_basis"),
        ({"method": "gpm", "gpm_samples": 0}, "gpm_samples"),
        ({"method": "owm", "optimizer": "adam"}, "optimizer"),
        ({"method": "owm", "alpha": 0.0}, "alpha"),
        ({"method": "joint", "stream": "split", "multi_head": True}, "method"),
        ({"method": "joint", "gating": 0.8}, "gating"),
    ],
)
def test_projection_methods_refuse_what_they_cannot_honour(settings, field):
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        small(**settings)


SHORT = {"tasks": 2, "hidden": (16,), "iterations": 20, "sharpness": 0, "stop_on_blackout": False}


@pytest.mark.parametrize(
    "method,kw,floats,samples",
    [
        ("sgd", {}, lambda P, d: 0, 0),
        ("ewc", {}, lambda P, d: 2 * P, 0),  # the summed Fisher and its anchor
        ("ewc", {"ewc_form": "separate"}, lambda P, d: 2 * P * d["task"], 0),  # one (Fisher, anchor) pair per task
        ("l2", {}, lambda P, d: P, 0),
        ("si", {}, lambda P, d: 4 * P, 0),
        ("replay", {"memory": 50}, lambda P, d: 50 * 64, 50),  # 50 digits images of 8 x 8
        ("gpm", {}, lambda P, d: sum(round(u * n) * (n + 1) for u, n in zip(d["subspace_use"], (65, 17))), 0),
    ],
)
def test_every_method_reports_what_it_keeps(method, kw, floats, samples):
    res = run(small(method=method, **SHORT, **kw))
    P = res.n_params
    assert P == 16 * 64 + 16 + 10 * 16 + 10
    for d in res.diagnostics:
        assert d["memory_floats"] == floats(P, d) and d["memory_samples"] == samples, d
    if method == "gpm":
        assert 0 < res.diagnostics[0]["memory_floats"] < res.diagnostics[1]["memory_floats"]


def test_owm_projector_is_the_closed_form_after_its_inputs():
    """After 40 batches, each member's layer projector equals alpha (alpha I + X^T X)^-1, X the batches'
    mean layer inputs (with the bias's 1) as rows, and a step's [W b] gradient is multiplied by it."""
    _, streams, net, _ = method_setup("sgd", seeds=(0, 1))
    configs = [small(method="owm", seed=0, alpha=1.0), small(method="owm", seed=1, alpha=0.05)]
    owm = registry()["owm"](configs, net)
    means = [[[] for _ in net.weights] for _ in range(2)]
    g = torch.Generator().manual_seed(3)
    for step in range(40):
        x, y = streams.batch(0, [torch.randperm(1000, generator=g)[:16] for _ in range(2)])
        grads = [torch.randn(p.shape, generator=g) for p in net.params()]
        before = [q.clone() for q in grads]
        owm.batch(net, x, y, streams.task(0))
        owm.adjust(net, grads, streams.task(0))
        for m in range(2):
            h = x[m].reshape(16, -1).double().numpy()
            for l, (w, b) in enumerate(zip(net.weights, net.biases)):
                means[m][l].append(np.append(h.mean(0), 1.0))
                h = np.maximum(h @ w[m].double().detach().numpy().T + b[m].double().detach().numpy(), 0)
    for m, alpha in enumerate((1.0, 0.05)):
        for l, P in enumerate(owm.P):
            X = np.array(means[m][l])
            want = alpha * np.linalg.inv(alpha * np.eye(X.shape[1]) + X.T @ X)
            np.testing.assert_allclose(P[m].double().numpy(), want, atol=2e-4 * np.abs(want).max())
            G = np.hstack([before[2 * l][m].double().numpy(), before[2 * l + 1][m].double().numpy()[:, None]])
            got = np.hstack([grads[2 * l][m].double().numpy(), grads[2 * l + 1][m].double().numpy()[:, None]])
            np.testing.assert_allclose(got, G @ P[m].double().numpy(), atol=1e-5 * np.abs(G).max())
    assert owm.memory() == [{"memory_floats": 65**2 + 33**2, "memory_samples": 0}] * 2


def test_owm_keeps_task_one_better_than_sgd():
    c = dict(COMMON, lr=0.5)
    sgd = run(small(method="sgd", **c)).acc
    owm = run(small(method="owm", **c)).acc
    assert owm[1, 0] > sgd[1, 0] + 0.15, (owm, sgd)
    assert owm[1, 1] > 0.8


@pytest.mark.parametrize("joint_batch", ["per-task", "fixed"])
def test_joint_trains_on_the_union_of_the_tasks_seen(joint_batch):
    """At task 3 the batch holds the current samples and samples of tasks 1-2, each rebuilt here through
    its own task's permutation from the same draws; the memory counts every training sample seen."""
    _, streams, net, joint = method_setup("joint", joint_batch=joint_batch)
    for t in (0, 1):
        joint.begin_task(net, streams.task(t), streams)
        joint.consolidate(net, streams.task(t), streams)
    joint.begin_task(net, streams.task(2), streams)
    n = streams.n_rows(0)
    assert joint.memory() == [{"memory_floats": 2 * n * 64, "memory_samples": 2 * n}]
    x, y = streams.batch(2, [torch.arange(30)])
    state = joint.gens[0].get_state()
    xb, yb = joint.batch(net, x, y, streams.task(2))
    mine = 30 if joint_batch == "per-task" else 10
    extra = 60 if joint_batch == "per-task" else 20
    assert xb.shape[1] == mine + extra
    torch.testing.assert_close(xb[0, :mine], x[0, :mine])
    g = torch.Generator()
    g.set_state(state)
    tasks = torch.randint(2, (extra,), generator=g)
    rows = (torch.rand(extra, generator=g, dtype=torch.float64) * n).long()
    s = streams.members[0]
    want = [s.batch(s.tasks[int(tk)], "train", r[None]) for tk, r in zip(tasks, rows)]
    torch.testing.assert_close(xb[0, mine:], torch.cat([w[0] for w in want]))
    torch.testing.assert_close(yb[0, mine:], torch.cat([w[1] for w in want]))
    assert 0.3 < float(tasks.float().mean()) < 0.7  # both earlier tasks drawn


def test_joint_holds_every_task_it_has_seen():
    """3 tasks: joint training keeps task 1 where it was learned and beats SGD on the average, storing all
    the training samples seen (every permuted task trains on all of digits' training images)."""
    c = dict(COMMON, tasks=3)
    res = run(small(method="joint", **c))
    sgd = run(small(method="sgd", **c)).acc
    assert res.acc[-1, 0] > res.acc[0, 0] - 0.05, res.acc
    assert res.acc[-1].mean() > sgd[-1].mean() + 0.1, (res.acc, sgd)
    assert [d["memory_samples"] for d in res.diagnostics] == [k * res.data["n_train"] for k in (1, 2, 3)]


def test_a_capped_basis_releases_the_directions_of_least_aged_energy():
    """Task 1 uses 3 strong input directions, task 2 two weak ones orthogonal to them; with room for 4,
    the weakest goes: one of task 2's without decay, task 1's once their energy has decayed below task 2's."""
    d, n = 8, 20
    g = np.random.default_rng(1)
    E = np.eye(d)
    R1 = torch.from_numpy(10 * E[:, :3] @ g.normal(size=(3, n)))
    R2 = torch.from_numpy(E[:, 3:5] @ g.normal(size=(2, n)))
    U1, e1 = grow(torch.zeros(d, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64), R1, 0.999, 4)
    assert U1.shape[1] == 3
    for decay, from_task_1 in ((1.0, 3), (1e-3, 2)):
        U, e = grow(U1, e1 * decay, R2, 0.999, 4)
        assert U.shape[1] == 4
        on_task_1 = np.linalg.norm(U.numpy()[:3], axis=0) > 0.99  # each kept direction is one task's
        assert on_task_1.sum() == from_task_1
        every = np.concatenate([e1.numpy() * decay, np.linalg.svd(R2.numpy(), compute_uv=False)[:2] ** 2])
        np.testing.assert_allclose(np.sort(e.numpy()), np.sort(every)[-4:], rtol=1e-8)


def test_max_basis_caps_each_layer_over_a_run():
    res = run(
        small(method="gpm", tasks=4, max_basis=0.3, basis_decay=0.5, **{k: v for k, v in SHORT.items() if k != "tasks"})
    )
    use = np.array([d["subspace_use"] for d in res.diagnostics])
    assert (use <= 0.3).all() and np.isclose(use[-1], [math.floor(0.3 * 65) / 65, math.floor(0.3 * 17) / 17]).all()


@pytest.mark.parametrize(
    "method,kw",
    [
        ("gpm", [{"threshold": 0.9}, {"threshold": 0.99}, {}]),
        ("owm", [{"alpha": 0.5}, {"alpha": 2.0}, {}]),
        ("joint", [{"lr": 0.05}, {}, {}]),
    ],
)
def test_a_projection_run_gives_the_same_numbers_alone_and_in_a_group(method, kw):
    """Members with their own settings, and one that diverges and leaves the stack, each as alone."""
    from blackout.experiment.train import run_group

    base = {"tasks": 3, "hidden": (16,), "iterations": 60, "lr": 0.1, "stop_on_blackout": False}
    configs = [small(method=method, seed=s, **{**base, **k}) for s, k in enumerate(kw)]
    configs[2] = small(method=method, seed=2, **{**base, "lr": 1e38})  # diverges in task 1
    group = run_group(configs)
    for c, member in zip(configs, group):
        alone = run(c)
        assert np.array_equal(alone.acc, member.acc, equal_nan=True)
        for da, db in zip(alone.diagnostics, member.diagnostics):
            assert (da.get("subspace_use"), da.get("memory_floats")) == (
                db.get("subspace_use"),
                db.get("memory_floats"),
            )
    assert group[2].verdict.cause == "diverged"
    assert (
        group[0].diagnostics[-1].get("subspace_use") != group[1].diagnostics[-1].get("subspace_use")
        or method == "joint"
    )


def test_gpm_keeps_each_member_s_basis_when_members_leave():
    _, streams, net, gpm = method_setup("gpm", seeds=(0, 1, 2))
    gpm.consolidate(net, streams.task(0), streams)
    before = [[U.clone() for U, _ in layers] for layers in gpm.bases]
    gpm.select([2, 0])
    for i, m in enumerate((2, 0)):
        for l, U in enumerate(before[m]):
            assert torch.equal(gpm.bases[i][l][0], U)
            assert torch.equal(gpm.U[l][i][0], U.float())


@pytest.mark.parametrize("k", [1, 2, 5])
def test_a_gpm_member_projects_the_same_alone_and_beside_a_larger_basis(k):
    """A group's bases differ in size; a member's projected gradient must be the one it gets alone,
    bit for bit (a stack padded to the largest basis changes the products' kernels, so their rounding)."""
    _, streams, net, pair = method_setup("gpm", seeds=(0, 1))
    _, _, _, alone = method_setup("gpm", seeds=(0,))
    g = torch.Generator().manual_seed(k)

    def basis(d, n):
        U = torch.linalg.qr(torch.randn(d, n, generator=g, dtype=torch.float64))[0]
        return U, torch.ones(n, dtype=torch.float64)

    own = [basis(d, k) for d in pair.dims]
    pair.bases = [own, [basis(d, d // 2) for d in pair.dims]]
    alone.bases = [own]
    pair._place()
    alone._place()
    grads = [torch.randn(p.shape, generator=g) for p in net.params()]
    mine = [t[:1].clone() for t in grads]
    pair.adjust(net, grads, streams.task(1))
    alone.adjust(net, mine, streams.task(1))
    for a, b in zip(mine, grads):
        assert torch.equal(a[0], b[0])
