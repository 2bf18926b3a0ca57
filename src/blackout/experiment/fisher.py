"""Exact diagonal Fisher information and other per-sample gradient statistics, without per-sample loops.

F_i = (1/N) sum_n E_y~q(y|x_n) [ (d/d theta_i  log p(y | x_n, theta))^2 ]

The label distribution q gives the three modes (Kirkpatrick et al. 2017 used ``sampled``):
``sampled`` one y drawn from the model's own predictive distribution; ``empirical`` the true label
(the "empirical Fisher", Kunstner et al. 2019 explain why it differs); ``expected`` the exact
expectation over every class, weighted by its probability.

It is never the square of a mini-batch gradient: that is (sum_n g_n)^2, not sum_n g_n^2.

The gradient of log p(y | x) with respect to the logits is e_y - p, so each per-sample gradient is
one backward pass of the logit gradient ``dlogits`` = e_y - p (for ``expected``, one pass per class
c with sqrt(p_c) (e_c - p), whose squares sum to the expectation). For linear and convolutional
layers the per-sample gradients' squares (or absolute values, for MAS) are summed in closed form:
``StackedMLP.grad_stats`` for the MLP, ``module_grad_stats`` here for any ``nn.Module`` (Linear and
Conv2d in closed form, ``torch.func`` for other layers). ``fisher_diag_loop`` is the plain
per-sample reference the tests compare against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .models import ModuleNet, StackedMLP


def head_logits(logits: torch.Tensor, head: tuple[int, int] | None) -> torch.Tensor:
    return logits if head is None else logits[..., head[0] : head[1]]


def fisher_dlogits(
    logits: torch.Tensor, mode: str, y: torch.Tensor, gens: list[torch.Generator], head: tuple[int, int] | None = None
) -> list[torch.Tensor]:
    """Logit gradients (M, N, C) whose per-sample squared backward passes sum to the Fisher.

    ``logits`` (M, N, C); ``y`` (M, N) true labels (within the head); ``gens`` one per member.
    Columns outside the task's ``head`` get zero.
    """
    z = head_logits(logits, head).float()
    p = z.softmax(-1)
    p = torch.nan_to_num(p, nan=1.0 / p.shape[-1])  # a diverged model still yields labels
    if mode == "expected":
        eye = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device)
        outs = [(eye[c] - p) * p[..., c : c + 1].sqrt() for c in range(p.shape[-1])]
    else:
        if mode == "sampled":
            labels = torch.stack(
                [
                    torch.multinomial(p[m].cpu().clamp_min(0) + 1e-12, 1, generator=g).squeeze(1)
                    for m, g in enumerate(gens)
                ]
            ).to(p.device)  # drawn by each member's own CPU generator
        elif mode == "max":
            labels = p.argmax(-1)
        else:
            labels = y
        outs = [F.one_hot(labels, p.shape[-1]).to(p.dtype) - p]
    if head is None:
        return outs
    full = []
    for d in outs:
        wide = torch.zeros_like(logits)
        wide[..., head[0] : head[1]] = d
        full.append(wide)
    return full


def fisher(
    net: StackedMLP | ModuleNet,
    x: torch.Tensor,
    y: torch.Tensor,
    mode: str,
    gens: list[torch.Generator],
    head: tuple[int, int] | None = None,
) -> list[torch.Tensor]:
    """Diagonal Fisher of every member on its own samples ``x`` (M, N, ...): one (M, ...) tensor per parameter."""
    with torch.no_grad():
        logits = net(x)
    total: list[torch.Tensor] = []
    for d in fisher_dlogits(logits, mode, y, gens, head):
        stats = net.grad_stats(x, d, "sq")
        total = stats if not total else [t + s for t, s in zip(total, stats)]
    return [t / x.shape[1] for t in total]


# -- any nn.Module -------------------------------------------------------------------------------


def module_grad_stats(
    model: nn.Module, x: torch.Tensor, dlogits: torch.Tensor, stat: str, chunk: int = 1024
) -> list[torch.Tensor]:
    """sum_n stat(per-sample gradient of <dlogits_n, model(x_n)>) per parameter; stat "sq" or "abs"."""
    if any(
        not isinstance(m, (nn.Linear, nn.Conv2d)) and any(True for _ in m.parameters(recurse=False))
        for m in model.modules()
    ):
        return _grad_stats_vmap(model, x, dlogits, stat)
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    index = {id(p): i for i, p in enumerate(params)}
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for start in range(0, x.shape[0], chunk):
        with _Capture(layers) as cap, torch.enable_grad():  # callers may hold no_grad
            out = model(x[start : start + chunk])
            (out * dlogits[start : start + chunk]).sum().backward()  # a scalar: no grad_outputs (see sharpness)
        for m in layers:
            for p_, s in _layer_stats(m, cap.inputs[m], cap.grads[m], stat):
                total[index[id(p_)]] += s
    model.zero_grad(set_to_none=True)
    return total


class _Capture:
    """Forward hooks that keep each layer's input and the gradient of its output."""

    def __init__(self, layers: list[nn.Linear | nn.Conv2d]):
        self.layers = layers
        self.inputs: dict[nn.Module, torch.Tensor] = {}
        self.grads: dict[nn.Module, torch.Tensor] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> _Capture:
        def hook(m: nn.Module, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
            self.inputs[m] = inp[0].detach()
            out.register_hook(lambda g, m=m: self.grads.__setitem__(m, g.detach()))

        self.handles = [m.register_forward_hook(hook) for m in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


def _layer_stats(m: nn.Linear | nn.Conv2d, a: torch.Tensor, g: torch.Tensor, stat: str):
    """Yield (param, sum over samples of stat(per-sample gradient)) for one layer."""
    f = torch.square if stat == "sq" else torch.abs
    if isinstance(m, nn.Linear):  # per-sample gradient g_n a_n^T: stat factors over the outer product
        yield m.weight, f(g).T @ f(a)
        if m.bias is not None:
            yield m.bias, f(g).sum(0)
        return
    # Conv2d: per-sample weight gradient G_n = g_n (O, L) @ unfold(a_n)^T (L, K): a sum over positions
    cols = F.unfold(a, m.kernel_size, m.dilation, cast(tuple[int, ...], m.padding), m.stride)  # (B, K, L)
    gf = g.flatten(2)  # (B, O, L)
    yield m.weight, f(torch.bmm(gf, cols.transpose(1, 2))).sum(0).view_as(m.weight)
    if m.bias is not None:
        yield m.bias, f(gf.sum(2)).sum(0)


def _grad_stats_vmap(model: nn.Module, x: torch.Tensor, dlogits: torch.Tensor, stat: str) -> list[torch.Tensor]:
    """Per-sample gradients with torch.func, for layers that have no closed form here."""
    from torch.func import functional_call, grad, vmap

    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def one(prm: dict, xi: torch.Tensor, di: torch.Tensor) -> torch.Tensor:
        return (functional_call(model, prm, (xi[None],))[0] * di).sum()

    g = vmap(grad(one), in_dims=(None, 0, 0))(params, x, dlogits)
    f = torch.square if stat == "sq" else torch.abs
    return [f(g[n]).sum(0) for n in names]


def fisher_diag_loop(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None, head: tuple[int, int] | None = None
) -> list[torch.Tensor]:
    """Reference: one backward pass per sample (and per class for ``expected``, ``labels`` None). Slow."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for n in range(x.shape[0]):
        logp = head_logits(model(x[n : n + 1]), head).log_softmax(-1)[0]
        if labels is not None:
            terms = [(logp[labels[n]], 1.0)]
        else:
            terms = [(logp[c], logp[c].exp().item()) for c in range(logp.shape[0])]
        for objective, weight in terms:
            gs = torch.autograd.grad(objective, params, retain_graph=True)
            for t, g in zip(total, gs):
                t += weight * g.pow(2)
    return [t / x.shape[0] for t in total]
