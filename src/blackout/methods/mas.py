"""Memory Aware Synapses (Aljundi et al., ECCV 2018, Eqs. 2-4 and 6).

Importance Omega_ij = (1/N) sum_n | d ||F(x_n)||_2^2 / d theta_ij |: how much the squared L2 norm
of the network's output (the task head's logits) moves with each weight, per sample, on N
training samples, needing no labels. Penalty lambda sum Omega (theta - theta*)^2 with theta* the
weights after the last task and Omega summed over tasks; here A = 2 Omega so (lambda/2) A matches.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from .base import sample_rows
from .quadratic import Quadratic


def output_norm_importance(model, x: torch.Tensor, head) -> list[torch.Tensor]:
    """(1/N) sum_n |d ||head(model(x_n))||^2 / d theta|, one tensor per parameter."""
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}

    def sq_norm(prm, xi):
        return head(functional_call(model, prm, (xi[None],))).pow(2).sum()

    g = vmap(grad(sq_norm), in_dims=(None, 0))(params, x)
    return [g[n].abs().mean(0) for n in names]


class MAS(Quadratic):
    name = "mas"

    def importance(self, model, task, stream):
        x, _ = stream.batch(task, "train", sample_rows(stream, task, self.cfg.method.fisher_samples, self.gen))
        return [2 * o for o in output_norm_importance(model, x, task.head_slice)]
