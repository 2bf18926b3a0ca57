"""The batched Fisher against a per-sample loop, for every layer type and label mode."""

import pytest
import torch
from torch import nn

from blackout.fisher import fisher_diag, fisher_diag_loop, sample_labels


def _models():
    torch.manual_seed(0)
    return {
        "mlp": nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.ReLU(), nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 5)),
        "cnn": nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, stride=2, padding=1),
                             nn.Sigmoid(), nn.Flatten(), nn.Linear(6 * 2 * 2, 5)),
        # LayerNorm has parameters but no closed form here: exercises the torch.func fallback
        "layernorm": nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.LayerNorm(12), nn.ReLU(), nn.Linear(12, 5)),
    }


@pytest.mark.parametrize("arch", ["mlp", "cnn", "layernorm"])
@pytest.mark.parametrize("mode", ["sampled", "empirical", "expected"])
def test_batched_fisher_equals_per_sample_loop(arch, mode):
    model = _models()[arch]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(45, 1, 8, 8, generator=g), torch.randint(0, 5, (45,), generator=g)
    labels = sample_labels(model, x, y, mode, generator=g)
    fast = fisher_diag(model, x, labels, chunk=16)  # chunking must not change the mean
    slow = fisher_diag_loop(model, x, labels)
    assert len(fast) == len(slow) == len(list(model.parameters()))
    for a, b in zip(fast, slow):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())


def test_fisher_is_not_the_square_of_the_batch_gradient():
    model = _models()["mlp"]
    x, y = torch.randn(30, 1, 8, 8), torch.randint(0, 5, (30,))
    f = fisher_diag(model, x, y)
    loss = -model(x).log_softmax(-1).gather(1, y[:, None]).mean()
    batch_sq = [g.pow(2) for g in torch.autograd.grad(loss, list(model.parameters()))]
    assert sum(a.sum() for a in f) > 5 * sum(b.sum() for b in batch_sq)


def test_head_slice_scores_only_the_task_head():
    model = _models()["mlp"]
    x = torch.randn(20, 1, 8, 8)
    y = torch.randint(0, 2, (20,))
    head = lambda z: z[:, 2:4]
    f = fisher_diag(model, x, y, head)
    torch.testing.assert_close(f[-2][[0, 1, 4]], torch.zeros(3, 20))  # other heads' rows get no gradient
    for a, b in zip(f, fisher_diag_loop(model, x, y, head)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)


def test_sampled_labels_follow_the_generator():
    model = _models()["mlp"]
    x, y = torch.randn(100, 1, 8, 8), torch.randint(0, 5, (100,))
    a = sample_labels(model, x, y, "sampled", generator=torch.Generator().manual_seed(3))
    b = sample_labels(model, x, y, "sampled", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, y)
    assert sample_labels(model, x, y, "expected") is None
