"""The step-size limit of a quadratic penalty, weight by weight.

A weight whose own penalty curvature makes lr x lambda x A_i >= 2 is unstable under plain SGD: its
distance from the anchor is multiplied by |1 - lr lambda A_i| > 1 at every step. Whether that
ends the run depends on whether the weight's input is active: a first-layer weight whose pixel is
blank in the current task (or a weight leaving a silent unit) takes no part in the loss, so it can
grow for many steps unseen, until a task that lights its input up arrives. These functions measure
that per member: how many weights are unstable, how far they have drifted, and how many of them
have an active input at the start of a task.
"""

from __future__ import annotations

from typing import cast

import torch

from .forecast import LIMIT
from .methods.base import Method
from .models import StackedMLP


def _hot(method: Method) -> list[torch.Tensor] | None:
    diag = method.hessian_diagonal()
    if diag is None:
        return None
    return [(d * Method.per_member(method.lr, d)) >= LIMIT for d in diag]


def unstable(method: Method, net) -> tuple[list, list]:
    """Per member: the number of unstable weights, and the largest |theta_i - mu_i| among them."""
    hot, anchor = _hot(method), getattr(method, "mu", None)
    M = len(method.configs)
    if hot is None or anchor is None:
        return [None] * M, [None] * M
    count = cast(torch.Tensor, sum(h.flatten(1).sum(1) for h in hot))
    drift = (
        torch.stack(
            [
                torch.where(h, (p.detach() - mu).abs(), 0.0).flatten(1).max(1).values
                for h, p, mu in zip(hot, net.params(), anchor)
            ]
        )
        .max(0)
        .values
    )
    return count.tolist(), [float(v) if c else None for v, c in zip(drift.tolist(), count.tolist())]


@torch.no_grad()
def unstable_active(method: Method, net, x: torch.Tensor) -> tuple[list, list]:
    """Per member, at a task's start (``x`` (M, N, ...): its training images): how many unstable
    weights have an input that is non-zero for some image, and the largest |theta_i - mu_i| among
    them (the "reach": how far the unstable weights these inputs touch have already grown). A bias's
    input is always 1."""
    hot, anchor = _hot(method), getattr(method, "mu", None)
    M = x.shape[0]
    if hot is None or anchor is None or not isinstance(net, StackedMLP):
        return [None] * M, [None] * M
    _, inputs = net.forward_cached(x)
    params = net.params()
    count, reach = torch.zeros(M, dtype=torch.long), torch.zeros(M, dtype=torch.float64)
    for layer, a in enumerate(inputs):
        active = (a != 0).any(1)  # (M, inputs of the layer)
        for k, mask in ((2 * layer, hot[2 * layer] & active[:, None, :]), (2 * layer + 1, hot[2 * layer + 1])):
            count += mask.flatten(1).sum(1).cpu()
            far = torch.where(mask, (params[k] - anchor[k]).abs(), 0.0).flatten(1).max(1).values
            reach = torch.maximum(reach, far.double().cpu())
    return count.tolist(), [float(r) if c else None for r, c in zip(reach.tolist(), count.tolist())]
