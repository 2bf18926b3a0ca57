"""Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017, Eq. 3 with one term per past task).

Penalty (lambda/2) sum_t sum_i F_t,i (theta_i - theta*_t,i)^2, F_t the diagonal Fisher after task t
(``fisher.py``). ``ewc_form = "merged"`` keeps the identical constant-cost form (``quadratic.py``);
``"separate"`` keeps every (F_t, theta*_t) pair as published code does, for comparison.
"""

from __future__ import annotations

import torch

from ...settings import Setting
from ..fisher import fisher
from .base import kept
from .quadratic import FISHER_SETTINGS, Quadratic, lam_setting


def task_fisher(method, net, task, data) -> list[torch.Tensor]:
    """Diagonal Fisher of every member on ``fisher_samples`` random training samples of its own task."""
    opts = method.configs[0].method
    x, y = data.sample(task.index, opts.fisher_samples, method.gens)
    return fisher(net, x, y, opts.fisher_labels, method.gens, task.head_range)


class EWC(Quadratic):
    name = "ewc"
    anchor = "merged"
    settings = {
        **lam_setting(15.0),
        "ewc_form": Setting(
            "merged", "one merged quadratic (constant cost) or one term per past task", choices=("merged", "separate")
        ),
        **FISHER_SETTINGS,
    }

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.separate = configs[0].method.ewc_form == "separate"
        # one term per past task, each adding its own gradient, as published code does (for comparison)
        self.needs_grads = self.separate and self.apply == "gradient"
        self.terms: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []

    def importance(self, net, task, data):
        f = task_fisher(self, net, task, data)
        if self.separate:
            self.terms.append((f, [p.detach().clone() for p in net.params()]))
        return f

    def _coefficients(self) -> None:
        super()._coefficients()
        if self.needs_grads:
            self._maps = (None, None)

    @torch.no_grad()
    def adjust(self, net, grads, task) -> None:
        if not self.needs_grads:
            return super().adjust(net, grads, task)
        for fs, ths in self.terms:
            for g, p, f, th in zip(grads, net.params(), fs, ths):
                g.addcmul_(self.per_member(self.lam, f) * f, p - th)

    def memory(self):
        if not self.separate:
            return super().memory()
        return [kept(2 * len(self.terms) * self.param_floats) for _ in range(self.M)]  # (F_t, theta*_t) per task

    def penalty_value(self, net):
        if not self.separate:
            return super().penalty_value(net)
        q = sum(
            ((p.detach() - th).pow(2) * f).flatten(1).sum(1)
            for fs, ths in self.terms
            for p, f, th in zip(net.params(), fs, ths)
        )
        return (0.5 * self.lam * q.cpu()).tolist() if self.terms else [0.0] * self.M

    def select(self, keep):
        super().select(keep)
        idx = torch.tensor(keep)
        self.terms = [
            ([f.index_select(0, idx.to(f.device)) for f in fs], [t.index_select(0, idx.to(t.device)) for t in ths])
            for fs, ths in self.terms
        ]
