"""Every fast path of the training step against a plain autograd step on an independent nn.Sequential."""

import pytest
import torch
import torch.nn.functional as F

from blackout.experiment.methods.base import Method
from blackout.experiment.step import SGD, Adam, cross_entropy_parts, loss_grads, update
from tests.conftest import jiggle, member_module, method_setup


def _reference_steps(model, x, y, lr, steps, penalty=None, optimizer="sgd"):
    """Plain PyTorch: cross-entropy (+ a penalty through autograd), backward, torch.optim step."""
    opt = (
        torch.optim.SGD(model.parameters(), lr=lr)
        if optimizer == "sgd"
        else torch.optim.Adam(model.parameters(), lr=lr)
    )
    for s in range(steps):
        loss = F.cross_entropy(model(x[s]), y[s])
        if penalty is not None:
            loss = loss + penalty(list(model.parameters()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach() for p in model.parameters()]


def _batches(streams, task, steps, b=32, m=0):
    xs, ys = [], []
    for s in range(steps):
        x, y = streams.batch(task, [torch.arange(b * s, b * s + b) + 7 * k for k in range(len(streams.members))])
        xs.append(x.clone())
        ys.append(y.clone())
    return xs, ys


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(2, 7, 5, generator=g, requires_grad=True), torch.randint(0, 5, (2, 7), generator=g)
    logp_y, d = cross_entropy_parts(logits.detach().clone(), y, None)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")
    (auto,) = torch.autograd.grad(loss, logits)
    torch.testing.assert_close(d, auto)
    torch.testing.assert_close(-logp_y.sum(), loss.detach())
    _, dh = cross_entropy_parts(logits.detach().clone(), y % 2, (1, 3))  # a head: columns 1 and 2 only
    (auto_h,) = torch.autograd.grad(
        F.cross_entropy(logits[..., 1:3].flatten(0, 1), (y % 2).flatten(), reduction="sum"), logits
    )
    torch.testing.assert_close(dh, auto_h)


@pytest.mark.parametrize(
    "method,kw",
    [
        ("sgd", {}),
        ("ewc", {"lam": 5.0}),
        ("ewc-prox", {"lam": 50.0}),
        ("l2", {"lam": 0.5}),
        ("online-ewc", {"lam": 5.0, "gamma": 0.8}),
    ],
)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_fused_step_matches_plain_autograd_sgd(method, kw, activation):
    """Twenty fused steps (no autograd graph, the update inside the weight-gradient product, the penalty
    as an affine map) land where twenty torch.optim.SGD steps on the same loss land."""
    configs, streams, net, m = method_setup(method, tasks=2, activation=activation, lr=0.1, **kw)
    task = streams.task(0)
    m.begin_task(net, task, streams)
    m.consolidate(net, task, streams)  # a penalty in force from here on
    jiggle(net, 0.05)
    model = member_module(net)
    A = [a[0].clone() for a in getattr(m, "A", [])]
    mu = [u[0].clone() for u in getattr(m, "mu", [])]
    lam = kw.get("lam", 0.0)
    prox = method == "ewc-prox"
    xs, ys = _batches(streams, 1, 20)
    opt = SGD(net.params(), m.lr)
    for x, y in zip(xs, ys):
        update(net, m, opt, x, y, streams.task(1))
    if prox:  # the reference: an SGD step on the task loss, then the closed-form proximal map
        ref_opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in zip(xs, ys):
            ref_opt.zero_grad()
            F.cross_entropy(model(x[0]), y[0]).backward()
            ref_opt.step()
            with torch.no_grad():
                for p, a, u in zip(model.parameters(), A, mu):
                    p.copy_((p + 0.1 * lam * a * u) / (1 + 0.1 * lam * a))
        ref = [p.detach() for p in model.parameters()]
    else:
        pen = (lambda ps: 0.5 * lam * sum((a * (p - u) ** 2).sum() for p, a, u in zip(ps, A, mu))) if A else None
        ref = _reference_steps(model, [x[0] for x in xs], [y[0] for y in ys], 0.1, 20, pen)
    for got, want in zip(net.params(), ref):
        torch.testing.assert_close(got[0].detach(), want, rtol=1e-4, atol=1e-5)


def test_autograd_path_and_adam_match_torch_optim():
    """A method with its own loss trains through autograd; Adam is written out as torch.optim.Adam computes it."""

    class Doubled(Method):
        name = "doubled-test"

        def loss(self, net, x, y, task):
            return 2 * super().loss(net, x, y, task)

    configs, streams, net, _ = method_setup("sgd", tasks=2, optimizer="adam", lr=0.01)
    m = Doubled(configs, net)
    assert not Doubled.fused()
    model = member_module(net)
    xs, ys = _batches(streams, 0, 15)
    opt = Adam(net.params(), m.lr)
    for x, y in zip(xs, ys):
        update(net, m, opt, x, y, streams.task(0))
    ref = torch.optim.Adam(model.parameters(), lr=0.01)
    for x, y in zip(xs, ys):
        ref.zero_grad()
        (2 * F.cross_entropy(model(x[0]), y[0])).backward()
        ref.step()
    for got, want in zip(net.params(), model.parameters()):
        torch.testing.assert_close(got[0].detach(), want.detach(), rtol=1e-5, atol=1e-6)


def test_hand_written_gradients_equal_autograd_for_every_member():
    configs, streams, net, m = method_setup("sgd", seeds=(0, 1, 2), hidden=(16, 8))
    x, y = streams.batch(0, [torch.arange(20)] * 3)
    loss, grads, _ = loss_grads(net, m, x, y, streams.task(0))
    for k in range(3):
        model = member_module(net, k)
        ref_loss = F.cross_entropy(model(x[k]), y[k])
        ref = torch.autograd.grad(ref_loss, list(model.parameters()))
        assert loss[k].item() == pytest.approx(ref_loss.item(), rel=1e-6)
        for g, r in zip(grads, ref):
            torch.testing.assert_close(g[k], r, rtol=1e-5, atol=1e-7)
