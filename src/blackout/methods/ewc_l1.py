"""EWC with an L1 penalty: lambda sum_i A_i |theta_i - mu_i| (the seed study's L1 idea).

A is the summed diagonal Fisher of the past tasks (as in EWC) and mu the weights after the last
task: a sum of L1 terms with different centres has no single-centre equivalent, so the L1 form is
anchored at the latest weights, like online EWC. An L1 term is not differentiable at its centre,
so its subgradient makes weights oscillate around mu rather than stay there; with ``prox`` the
penalty is instead applied after each SGD step as its exact proximal map, the soft threshold

    theta <- mu + sign(theta - mu) * max(|theta - mu| - lr * lambda * A, 0),

which holds a weight exactly at mu while its pull from the task loss is weaker than lambda A.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .ewc import task_fisher
from .quadratic import Quadratic


class EWCL1(Quadratic):
    name = "ewc-l1"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.prox = cfg.method.prox

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.method.prox and cfg.train.optimizer != "sgd":
            raise ConfigError(f"optimizer: ewc-l1 with prox needs sgd (the soft threshold assumes the plain SGD step), "
                              f"got {cfg.train.optimizer!r}")

    def importance(self, model, task, stream):
        return task_fisher(self, model, task, stream)

    def l1(self, model) -> torch.Tensor:
        return sum((a * (p - mu).abs()).sum() for p, a, mu in zip(model.parameters(), self.A, self.mu))

    def penalty(self, model, x, task):
        if self.prox or self.tasks_seen == 0 or self.lam == 0:
            return None
        return self.lam * self.l1(model)

    @torch.no_grad()
    def after_step(self, model) -> None:
        if not self.prox or self.tasks_seen == 0:
            return
        for p, a, mu in zip(model.parameters(), self.A, self.mu):
            d = p - mu
            p.copy_(mu + d.sign() * (d.abs() - self.lr * self.lam * a).clamp_min(0))

    def penalty_value(self, model) -> float:
        with torch.no_grad():
            return self.lam * float(self.l1(model)) if self.tasks_seen else 0.0

    def stability(self):
        """lr x lambda x max A, as for EWC; an L1 term has no curvature, so this is for comparison only."""
        return super().stability()
