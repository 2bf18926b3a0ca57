"""Sharpness against the eigenvalues of a dense Hessian on a tiny network."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from blackout.experiment.models import StackedMLP
from blackout.experiment.sharpness import top_eigenvalues
from blackout.experiment.train import run
from tests.conftest import member_module, small


class _Task:
    head_range = None


def _dense_hessian(model, x, y, diag=None):
    params = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params]).requires_grad_()

    def loss_of(vec):
        out, i = x.flatten(1), 0
        chunks = []
        for p in params:
            chunks.append(vec[i : i + p.numel()].view_as(p))
            i += p.numel()
        w1, b1, w2, b2 = chunks
        z = torch.tanh(out @ w1.T + b1) @ w2.T + b2
        return F.cross_entropy(z, y)

    H = torch.autograd.functional.hessian(loss_of, flat.detach().double().float())
    H = H.double().numpy()
    if diag is not None:
        H = H + np.diag(diag)
    return np.linalg.eigvalsh(H)


def test_power_iteration_finds_the_dense_hessian_s_top_eigenvalue_with_and_without_a_penalty():
    torch.manual_seed(0)
    net = StackedMLP((6, 5, 3), "tanh", seeds=[0, 1])  # two members: 53 parameters each
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 40, 6, generator=g), torch.randint(0, 3, (2, 40), generator=g)
    pen = [torch.rand(p.shape, generator=g) * 3.0 for p in net.params()]  # a diagonal penalty curvature
    total, alone = top_eigenvalues(net, pen, x, y, _Task(), iters=25, seeds=[5, 6])
    for m in range(2):
        diag = torch.cat([d[m].reshape(-1) for d in pen]).double().numpy()
        with_pen = _dense_hessian(member_module(net, m), x[m], y[m], diag)
        without = _dense_hessian(member_module(net, m), x[m], y[m])
        top = lambda ev: ev[np.argmax(np.abs(ev))]
        assert total[m] == pytest.approx(top(with_pen), rel=1e-3)
        assert alone[m] == pytest.approx(top(without), rel=1e-3)
        assert total[m] >= diag.max() - 1e-6  # adding a positive diagonal never lowers the top eigenvalue


def test_a_run_records_sharpness_beside_the_stability_number():
    r = run(small(tasks=3, lam=15.0, sharpness=8))
    d = r.diagnostics
    assert all({"sharpness", "sharpness_task", "sharpness_penalty"} <= set(x) for x in d)
    assert d[0]["sharpness_penalty"] == 0.0 and d[0]["sharpness"] == pytest.approx(d[0]["sharpness_task"], rel=0.05)
    for x in d[1:]:  # the penalty's part is the stability number in force while the task trained
        assert x["sharpness_penalty"] == pytest.approx(x["stability"], rel=1e-5)
        assert x["sharpness"] >= 0.9 * max(x["sharpness_task"], x["sharpness_penalty"])
    assert r.timings["sharpness"] > 0
    off = run(small(tasks=2, sharpness=0))
    assert "sharpness" not in off.diagnostics[0]
