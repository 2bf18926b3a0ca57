"""Memory Aware Synapses (Aljundi et al., ECCV 2018, Eqs. 2-4 and 6).

Importance Omega_ij = (1/N) sum_n | d ||F(x_n)||_2^2 / d theta_ij |: how much the squared L2 norm
of the network's output (the task head's logits) moves with each weight, per sample, on
N = ``fisher_samples`` random training samples of the task, needing no labels. Penalty
lambda sum Omega (theta - theta*)^2 with theta* the weights after the last task and Omega summed
over tasks; here A = 2 Omega so (lambda/2) A matches. The per-sample absolute gradients are summed
in closed form (``StackedMLP.grad_stats``): |dz_n a_n^T| = |dz_n| |a_n|^T.
"""

from __future__ import annotations

import torch

from ..fisher import head_logits
from .quadratic import FISHER_SETTINGS, Quadratic, lam_setting


def output_norm_importance(net, x: torch.Tensor, head) -> list[torch.Tensor]:
    """(1/N) sum_n |d ||head(net(x_n))||^2 / d theta| per parameter, (M, ...) each."""
    with torch.no_grad():
        logits = net(x)
    d = torch.zeros_like(logits)
    lo, hi = head if head is not None else (0, logits.shape[-1])
    d[..., lo:hi] = 2 * head_logits(logits, head)
    return [s / x.shape[1] for s in net.grad_stats(x, d, "abs")]


class MAS(Quadratic):
    name = "mas"
    settings = {**lam_setting(0.01), "fisher_samples": FISHER_SETTINGS["fisher_samples"]}

    def importance(self, net, task, data):
        x, _ = data.sample(task.index, self.configs[0].method.fisher_samples, self.gens)
        return [2 * o for o in output_norm_importance(net, x, task.head_range)]
