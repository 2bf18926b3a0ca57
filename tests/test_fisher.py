"""The closed-form Fisher and per-sample gradient statistics against a per-sample loop."""

import pytest
import torch
from torch import nn

from blackout.experiment.fisher import fisher, fisher_diag_loop, module_grad_stats
from blackout.experiment.models import ModuleNet, StackedMLP
from tests.conftest import member_module


def _modules():
    torch.manual_seed(0)
    return {
        "cnn": nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, stride=2, padding=1),
            nn.Sigmoid(),
            nn.Flatten(),
            nn.Linear(6 * 2 * 2, 5),
        ),
        # LayerNorm has parameters but no closed form here: exercises the torch.func fallback
        "layernorm": nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.LayerNorm(12), nn.ReLU(), nn.Linear(12, 5)),
    }


def _labels_as_fisher_draws_them(logits, mode, y, seeds, head=None):
    """The labels ``fisher`` uses, drawn independently: the same generators, the same multinomial."""
    if mode == "empirical":
        return [y[m] for m in range(len(seeds))]
    if mode == "expected":
        return [None] * len(seeds)
    if mode == "max":  # the most likely class, by argmax over the (head's) logits
        z = logits if head is None else logits[..., head[0] : head[1]]
        return [z[m].argmax(-1) for m in range(len(seeds))]
    z = logits if head is None else logits[..., head[0] : head[1]]
    return [
        torch.multinomial(z[m].softmax(-1) + 1e-12, 1, generator=torch.Generator().manual_seed(s)).squeeze(1)
        for m, s in enumerate(seeds)
    ]


@pytest.mark.parametrize("mode", ["sampled", "empirical", "expected", "max"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_stacked_mlp_fisher_equals_each_member_s_per_sample_loop(mode, activation):
    net = StackedMLP((64, 20, 20, 5), activation, seeds=[3, 4])
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 45, 1, 8, 8, generator=g), torch.randint(0, 5, (2, 45), generator=g)
    with torch.no_grad():
        labels = _labels_as_fisher_draws_them(net(x), mode, y, [11, 12])
    fast = fisher(net, x, y, mode, [torch.Generator().manual_seed(s) for s in (11, 12)])
    for m in range(2):
        slow = fisher_diag_loop(member_module(net, m), x[m], labels[m])
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a[m], b, rtol=1e-5, atol=1e-6 * b.abs().max().item())


@pytest.mark.parametrize("arch", ["cnn", "layernorm"])
@pytest.mark.parametrize("mode", ["empirical", "expected"])
def test_module_fisher_equals_per_sample_loop(arch, mode):
    module = _modules()[arch]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(1, 33, 1, 8, 8, generator=g), torch.randint(0, 5, (1, 33), generator=g)
    fast = fisher(ModuleNet(module), x, y, mode, [torch.Generator().manual_seed(0)])
    slow = fisher_diag_loop(module, x[0], y[0] if mode == "empirical" else None)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a[0], b, rtol=1e-5, atol=1e-6 * b.abs().max().item())


def test_absolute_gradient_statistic_equals_per_sample_loop():
    """MAS needs sum_n |per-sample gradient|; for a linear layer |dz a^T| = |dz| |a|^T."""
    net = StackedMLP((64, 10, 5), "relu", seeds=[0])
    module = _modules()["cnn"]
    x = torch.randn(1, 17, 1, 8, 8)
    for model, stats in ((member_module(net), None), (module, None)):
        with torch.no_grad():
            d = 2 * model(x[0])  # d ||f||^2 / d logits
        if model is module:
            stats = module_grad_stats(module, x[0], d, "abs")
        else:
            stats = [s[0] for s in net.grad_stats(x, d[None], "abs")]
        ref = [torch.zeros_like(p) for p in model.parameters()]
        for n in range(17):
            gs = torch.autograd.grad(model(x[0, n : n + 1]).pow(2).sum(), list(model.parameters()))
            for r, gg in zip(ref, gs):
                r += gg.abs()
        for a, b in zip(stats, ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * b.abs().max().item())


def test_fisher_is_not_the_square_of_the_batch_gradient():
    net = StackedMLP((64, 20, 5), "relu", seeds=[0])
    x, y = torch.randn(1, 30, 1, 8, 8), torch.randint(0, 5, (1, 30))
    f = fisher(net, x, y, "empirical", [torch.Generator()])
    model = member_module(net)
    loss = -model(x[0]).log_softmax(-1).gather(1, y[0, :, None]).mean()
    batch_sq = [g.pow(2) for g in torch.autograd.grad(loss, list(model.parameters()))]
    assert sum(a.sum() for a in f) > 5 * sum(b.sum() for b in batch_sq)


def test_a_head_scores_only_its_own_outputs():
    net = StackedMLP((64, 20, 6), "relu", seeds=[0])
    x, y = torch.randn(1, 20, 1, 8, 8), torch.randint(0, 2, (1, 20))
    f = fisher(net, x, y, "empirical", [torch.Generator()], head=(2, 4))
    torch.testing.assert_close(f[-2][0][[0, 1, 4, 5]], torch.zeros(4, 20))  # other heads' rows get no gradient
    for a, b in zip(f, fisher_diag_loop(member_module(net), x[0], y[0], head=(2, 4))):
        torch.testing.assert_close(a[0], b, rtol=1e-5, atol=1e-8)
