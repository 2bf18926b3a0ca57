"""EWC with its penalty applied as an exact proximal (implicit) step instead of through the gradient.

After each SGD step on the task loss alone, theta' = theta - lr * grad L, the merged EWC penalty
(lambda/2) sum_i A_i (theta_i - mu_i)^2 (``quadratic.py``: A = sum_t F_t, A mu = B = sum_t F_t theta_t)
is applied by its proximal map, the minimiser of (1/2 lr)||theta - theta'||^2 + (lambda/2) sum A (theta - mu)^2:

    theta <- (theta' + lr lambda A mu) / (1 + lr lambda A) = (theta' + lr lambda B) / (1 + lr lambda A).

An explicit gradient step on a quadratic of curvature c diverges once lr c > 2; the implicit step
contracts for every lr c >= 0, so this removes the step-size instability that the stability number
measures (which is still recorded, for comparison). Adam is refused: its per-weight step sizes
are not lr, so this closed form would not be the proximal step of the update Adam takes.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .ewc import EWC


class EWCProx(EWC):
    name = "ewc-prox"

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.train.optimizer != "sgd":
            raise ConfigError(f"optimizer: ewc-prox needs sgd (its proximal step assumes the plain SGD step size), "
                              f"got {cfg.train.optimizer!r}")

    def penalty(self, model, x, task):
        return None

    @torch.no_grad()
    def after_step(self, model) -> None:
        if self.tasks_seen == 0 or self.lam == 0:
            return
        for p, a, mu in zip(model.parameters(), self.A, self.mu):
            c = self.lr * self.lam * a
            p.copy_((p + c * mu) / (1 + c))
