"""EWC with an L1 penalty: lambda sum_i A_i |theta_i - mu_i| (the seed study's L1 idea).

A is the summed diagonal Fisher of the past tasks (as in EWC) and mu the weights after the last
task: a sum of L1 terms with different centres has no single-centre equivalent, so the L1 form is
anchored at the latest weights, like online EWC. An L1 term is not differentiable at its centre,
so its subgradient lambda A sign(theta - mu) makes weights oscillate around mu rather than stay
there; with ``prox`` the penalty is instead applied after each SGD step as its exact proximal map,
the soft threshold

    theta <- mu + sign(theta - mu) * max(|theta - mu| - lr * lambda * A, 0),

which holds a weight exactly at mu while its pull from the task loss is weaker than lambda A.
An L1 term has no curvature, so the stability number (still recorded, as lr lambda max A) does
not govern this method and is left out of the stability statistics.
"""

from __future__ import annotations

import torch

from ...errors import ConfigError
from ...settings import Setting
from .ewc import task_fisher
from .quadratic import FISHER_SETTINGS, Quadratic, lam_setting


class EWCL1(Quadratic):
    name = "ewc-l1"
    settings = {
        **lam_setting(1.0),
        "prox": Setting(False, "apply the penalty as a proximal soft-threshold step instead of its subgradient"),
        **FISHER_SETTINGS,
    }
    gradient_penalty = False

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.prox = configs[0].method.prox
        self.needs_grads = not self.prox  # the subgradient is added to the gradients

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.method.prox and cfg.train.optimizer != "sgd":
            raise ConfigError(
                f"optimizer: ewc-l1 with prox needs sgd (the soft threshold assumes the plain SGD step), "
                f"got {cfg.train.optimizer!r}"
            )

    def importance(self, net, task, data):
        return task_fisher(self, net, task, data)

    @torch.no_grad()
    def adjust(self, net, grads, task) -> None:
        if not self.prox and self.active:
            for g, p, la, mu in zip(grads, net.params(), self.lamA, self.mu):
                g.addcmul_(la, (p - mu).sign_())

    @torch.no_grad()
    def after_step(self, net, step) -> None:
        if not self.prox or not self.active:
            return
        for p, la, mu in zip(net.params(), self.lamA, self.mu):
            d = p - mu
            p.copy_(mu + d.sign() * (d.abs() - self.per_member(self.lr, la) * la).clamp_min(0))

    def hessian_diagonal(self):
        return None  # an L1 term is piecewise linear: no curvature

    def _coefficients(self) -> None:
        self.lamA = [self.per_member(self.lam, a) * a for a in self.A]

    def penalty_value(self, net):
        if self.tasks_seen == 0:
            return [0.0] * self.M
        q = sum((a * (p.detach() - mu).abs()).flatten(1).sum(1) for p, a, mu in zip(net.params(), self.A, self.mu))
        return (self.lam * q.cpu()).tolist()
