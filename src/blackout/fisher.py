"""Exact diagonal Fisher information, from per-sample gradients, in one batched pass.

F_i = (1/N) sum_n E_y~q(y|x_n) [ (d/d theta_i  log p(y | x_n, theta))^2 ]

The label distribution q gives the three modes (Kirkpatrick et al. 2017 used ``sampled``):
``sampled`` one y drawn from the model's own predictive distribution; ``empirical`` the true label
(the "empirical Fisher", Kunstner et al. 2019 explain why it differs); ``expected`` the exact
expectation over every class, weighted by its probability.

It is never the square of a mini-batch gradient: that is (sum_n g_n)^2, not sum_n g_n^2.

For ``Linear`` and ``Conv2d`` layers the per-sample gradient is a product of the layer's input
``a_n`` and its output gradient ``g_n``, so sum_n (g_n a_n^T)^2 = (g^2)^T (a^2) comes from one
batched forward/backward pass with no per-sample loop. Any other layer with parameters falls back
to ``torch.func`` (vmap over grad). ``fisher_diag_loop`` is the plain per-sample reference.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Head = Callable[[torch.Tensor], torch.Tensor]


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


def sample_labels(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str, head: Head = _identity,
                  generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Targets for the Fisher: sampled from the model, the true ``y``, or None for ``expected``."""
    if mode == "empirical":
        return y
    if mode == "expected":
        return None
    with torch.no_grad():
        p = head(model(x)).float().softmax(-1)
        p = torch.nan_to_num(p, nan=1.0 / p.shape[-1])  # a diverged model still yields labels
    return torch.multinomial(p.clamp_min(0) + 1e-12, 1, generator=generator).squeeze(1)


def fisher_diag(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None, head: Head = _identity,
                chunk: int = 1024) -> list[torch.Tensor]:
    """Diagonal Fisher, one tensor per parameter (same shapes), averaged over the N samples of ``x``.

    ``labels``: (N,) targets, or None for the expectation over classes.
    """
    if any(not isinstance(m, (nn.Linear, nn.Conv2d)) and any(True for _ in m.parameters(recurse=False))
           for m in model.modules()):
        return _fisher_vmap(model, x, labels, head)
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    index = {id(p): i for i, p in enumerate(params)}
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for start in range(0, x.shape[0], chunk):
        xb = x[start : start + chunk]
        lb = None if labels is None else labels[start : start + chunk]
        with _Capture(layers) as cap:
            logp = head(model(xb)).log_softmax(-1)  # (B, C)
            if lb is not None:
                passes = [(logp.gather(1, lb[:, None]).sum(), None)]
            else:
                p = logp.detach().exp()
                passes = [(logp[:, c].sum(), p[:, c]) for c in range(logp.shape[1])]
            for k, (objective, weight) in enumerate(passes):
                cap.grads.clear()
                objective.backward(retain_graph=k + 1 < len(passes))
                for m in layers:
                    for p_, sq in _layer_sq_grads(m, cap.inputs[m], cap.grads[m], weight):
                        total[index[id(p_)]] += sq
    model.zero_grad(set_to_none=True)
    return [t / x.shape[0] for t in total]


class _Capture:
    """Forward hooks that keep each layer's input and the gradient of its output."""

    def __init__(self, layers: list[nn.Module]):
        self.layers, self.inputs, self.grads, self.handles = layers, {}, {}, []

    def __enter__(self) -> _Capture:
        def hook(m: nn.Module, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
            self.inputs[m] = inp[0].detach()
            out.register_hook(lambda g, m=m: self.grads.__setitem__(m, g.detach()))

        self.handles = [m.register_forward_hook(hook) for m in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


def _layer_sq_grads(m: nn.Module, a: torch.Tensor, g: torch.Tensor, w: torch.Tensor | None):
    """Yield (param, sum over samples of w_n * (per-sample gradient)^2) for one layer."""
    if isinstance(m, nn.Linear):
        g2 = g.pow(2) if w is None else g.pow(2) * w[:, None]  # (B, out)
        yield m.weight, g2.T @ a.pow(2)  # (out, in)
        if m.bias is not None:
            yield m.bias, g2.sum(0)
        return
    # Conv2d: per-sample weight gradient G_n = g_n (O, L) @ unfold(a_n)^T (L, K)
    cols = F.unfold(a, m.kernel_size, m.dilation, m.padding, m.stride)  # (B, K, L)
    gf = g.flatten(2)  # (B, O, L)
    gw = torch.bmm(gf, cols.transpose(1, 2)).pow(2)  # (B, O, K)
    gb = gf.sum(2).pow(2)  # (B, O)
    if w is not None:
        gw, gb = gw * w[:, None, None], gb * w[:, None]
    yield m.weight, gw.sum(0).view_as(m.weight)
    if m.bias is not None:
        yield m.bias, gb.sum(0)


def _fisher_vmap(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None, head: Head) -> list[torch.Tensor]:
    """Per-sample gradients with torch.func, for layers that have no closed form here."""
    from torch.func import functional_call, grad, vmap

    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def logp(prm: dict, xi: torch.Tensor) -> torch.Tensor:
        return head(functional_call(model, prm, (xi[None],))).log_softmax(-1)[0]

    def one(prm: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return logp(prm, xi).gather(0, yi[None])[0]

    per_sample = vmap(grad(one), in_dims=(None, 0, 0))
    if labels is not None:
        g = per_sample(params, x, labels)
        return [g[n].pow(2).mean(0) for n in names]
    with torch.no_grad():
        p = head(model(x)).softmax(-1)
    total = {n: torch.zeros_like(params[n]) for n in names}
    for c in range(p.shape[1]):
        g = per_sample(params, x, torch.full((x.shape[0],), c, dtype=torch.long))
        for n in names:
            total[n] += (g[n].pow(2) * p[:, c].view(-1, *[1] * params[n].dim())).sum(0)
    return [total[n] / x.shape[0] for n in names]


def fisher_diag_loop(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None, head: Head = _identity) -> list[torch.Tensor]:
    """Reference: one backward pass per sample (and per class for ``expected``). Slow; for tests and benchmarks."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for n in range(x.shape[0]):
        logp = head(model(x[n : n + 1])).log_softmax(-1)[0]
        if labels is not None:
            terms = [(logp[labels[n]], 1.0)]
        else:
            terms = [(logp[c], logp[c].exp().item()) for c in range(logp.shape[0])]
        for objective, weight in terms:
            gs = torch.autograd.grad(objective, params, retain_graph=True)
            for t, g in zip(total, gs):
                t += weight * g.pow(2)
    return [t / x.shape[0] for t in total]
