"""Sharpness: the top eigenvalue of the Hessian of the penalised training loss, by Lanczos iteration.

Gradient descent with step size lr is stable on a quadratic only while lr x curvature < 2; for a
network the curvature that matters is the top eigenvalue of the loss's Hessian, which gradient
descent drives up to about 2 / lr and then holds there ("edge of stability", Cohen et al. 2021;
self-stabilisation, Damian et al. 2023). The penalised loss of a quadratic method has the Hessian
H = H_task + diag(lambda A): its penalty part is diagonal, its largest entry lambda max A, so
lr x that entry is exactly the stability number. Measured here at the end of each task on a probe
batch of the task's training samples, three numbers, each times lr so that 2 is the limit:

- ``sharpness``: lr x top eigenvalue of H (the task loss and the penalty together);
- ``sharpness_task``: lr x top eigenvalue of H_task alone;
- ``sharpness_penalty``: lr x lambda max A (the stability number after the task's consolidation).

Each eigenvalue takes ``iters`` Lanczos steps, one Hessian-vector product each (double backward
through the stacked MLP, block-diagonal over members, so every member's iteration runs in the same
products). The eigenvalue of largest magnitude is reported; after training it is the top positive one.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch

from .methods.base import Method, task_loss
from .models import StackedMLP

PROBE = 128  # training samples of the task the Hessian is measured on


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return cast(torch.Tensor, sum((x * y).flatten(1).sum(1) for x, y in zip(a, b)))


def _normalise(v: list[torch.Tensor]) -> list[torch.Tensor]:
    n = _dot(v, v).sqrt().clamp_min(1e-30)
    return [x / Method.per_member(n, x) for x in v]


def top_eigenvalues(
    net: StackedMLP,
    penalty: list[torch.Tensor] | None,
    x: torch.Tensor,
    y: torch.Tensor,
    task,
    iters: int,
    seeds: list[int],
) -> tuple[list[float], list[float]]:
    """(top eigenvalue of H_task + diag(penalty), of H_task alone), per member, by ``iters`` Lanczos steps.

    ``penalty``: the penalty's Hessian diagonal per parameter, (M, ...) each, or None. Lanczos
    (Lanczos 1950; Golub & Van Loan, Alg. 10.1.1) reaches the extreme eigenvalue in far fewer
    products than power iteration; a handful of steps suffices for the top one.
    """
    leaves = net.params()
    with torch.enable_grad():
        loss = task_loss(net(x), y, task).sum()  # members' losses add: the Hessian is block diagonal
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        gens = [torch.Generator().manual_seed(s) for s in seeds]  # each member's own start, whatever its group
        start = [torch.stack([torch.randn(p.shape[1:], generator=g) for g in gens]).to(p) for p in leaves]
        out = []
        for pen in (penalty, None):

            def hvp(v, pen=pen):
                # the gradient of <grad, v>, a scalar: passing v as grad_outputs instead would make torch
                # import its symbolic-shapes machinery (sympy, about a second) on first use
                gv = sum((g * u).sum() for g, u in zip(grads, v))
                hv = [h.detach() for h in torch.autograd.grad(gv, leaves, retain_graph=True)]
                return hv if pen is None else [h + d * u for h, d, u in zip(hv, pen, v)]

            out.append(_lanczos_top(hvp, start, iters))
    return out[0], out[1]


def _lanczos_top(hvp, start: list[torch.Tensor], k: int) -> list[float]:
    """The eigenvalue of largest magnitude per member, from a k-step Lanczos tridiagonalisation."""
    v, prev = _normalise(start), None
    alphas, betas = [], []
    beta = None
    for j in range(k):
        w = hvp(v)
        a = _dot(w, v)
        w = [wi - Method.per_member(a, wi) * vi for wi, vi in zip(w, v)]
        if prev is not None and beta is not None:  # set together
            w = [wi - Method.per_member(beta, wi) * pi for wi, pi in zip(w, prev)]
        alphas.append(a)
        beta = _dot(w, w).sqrt()
        if j + 1 < k:
            betas.append(beta)
            prev, v = v, [wi / Method.per_member(beta.clamp_min(1e-30), wi) for wi in w]
    out = []
    for m in range(len(alphas[0])):
        diag = np.array([float(x[m]) for x in alphas])
        off = np.array([float(x[m]) for x in betas])
        if not np.all(np.isfinite(diag)) or not np.all(np.isfinite(off)):
            out.append(float("nan"))
            continue
        ev = np.linalg.eigvalsh(np.diag(diag) + np.diag(off, 1) + np.diag(off, -1))
        out.append(float(ev[np.argmax(np.abs(ev))]))
    return out


def measure(
    net, method: Method, x: torch.Tensor, y: torch.Tensor, task, lr: torch.Tensor, iters: int, seeds: list[int]
) -> list[dict]:
    """The three sharpness numbers per member (empty dicts for networks other than an MLP)."""
    if not isinstance(net, StackedMLP) or iters < 1:
        return [{} for _ in range(x.shape[0])]
    pen = method.hessian_diagonal()
    total, alone = top_eigenvalues(net, pen, x, y, task, iters, seeds)
    top_pen = (
        [0.0] * net.M
        if pen is None
        else torch.stack([d.flatten(1).max(1).values for d in pen]).max(0).values.cpu().tolist()
    )
    lrs = lr.tolist()
    finite = [all(v == v for v in (a, b)) for a, b in zip(total, alone)]
    return [
        {"sharpness": lrs[m] * total[m], "sharpness_task": lrs[m] * alone[m], "sharpness_penalty": lrs[m] * top_pen[m]}
        if finite[m]
        else {}
        for m in range(net.M)
    ]
