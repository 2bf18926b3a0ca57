"""Memory Aware Synapses (Aljundi et al., ECCV 2018, Eqs. 2-4 and 6).

Importance Omega_ij = (1/N) sum_n | d ||F(x_n)||_2^2 / d theta_ij |: how much the squared L2 norm
of the network's output (the task head's logits) moves with each weight, per sample, on
N = ``fisher_samples`` random training samples of the task, needing no labels. Penalty
lambda sum Omega (theta - theta*)^2 with theta* the weights after the last task and Omega summed
over tasks; here A = 2 Omega so (lambda/2) A matches.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from .base import sample_rows
from .quadratic import Quadratic


def output_norm_importance(model, x: torch.Tensor, head, chunk: int = 64) -> list[torch.Tensor]:
    """(1/N) sum_n |d ||head(model(x_n))||^2 / d theta|, one tensor per parameter.

    The absolute value is taken per sample, so the gradients are per-sample (vmap over grad), in
    chunks of ``chunk`` samples to bound memory at chunk x parameters.
    """
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def sq_norm(prm, xi):
        return head(functional_call(model, prm, (xi[None],))).pow(2).sum()

    per_sample = vmap(grad(sq_norm), in_dims=(None, 0))
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for s in range(0, x.shape[0], chunk):
        g = per_sample(params, x[s : s + chunk])
        for n in names:
            total[n] += g[n].abs().sum(0)
    return [total[n] / x.shape[0] for n in names]


class MAS(Quadratic):
    name = "mas"

    def importance(self, model, task, stream):
        x, _ = stream.batch(task, "train", sample_rows(stream, task, self.cfg.method.fisher_samples, self.gen))
        return [2 * o for o in output_norm_importance(model, x, task.head_slice)]
