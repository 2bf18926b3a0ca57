"""L2 Init (Kumar, Marklund & Van Roy 2023, "Maintaining plasticity in continual learning via
regenerative regularization", Eq. 1): lambda ||theta - theta_0||^2 toward the initial weights.

Not a memory of old tasks but a pull back toward the one point from which the network learned
easily: it bounds how far weights drift (and so how large and how dead units become), to keep the
network plastic. It acts from the first step, not only after task 1. Written here as
(lambda/2) A ||theta - theta_0||^2 with A = 2, so ``lam`` is the paper's lambda; its curvature
lr x lambda x 2 is constant, never accumulating, so it cannot drive the stability number up.
"""

import torch

from .quadratic import Quadratic, lam_setting


class L2Init(Quadratic):
    name = "l2-init"
    settings = lam_setting(0.01, "penalty strength lambda of lambda ||theta - theta_0||^2")
    anchor = "initial"
    kept_vectors = 1  # the initial weights; A is the constant 2

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.A = [torch.full_like(p, 2.0) for p in self.A]  # mu: the initial weights (Quadratic's)
        self._coefficients()

    @property
    def active(self) -> bool:
        return bool((self.lam > 0).any())

    def accumulate(self, imp):
        return self.A

    def importance(self, net, task, data):
        return [torch.zeros_like(p) for p in self.A]

    def penalty_value(self, net):
        q = self.quadratic([p.detach() for p in net.params()]).double().cpu()
        return (0.5 * self.lam.double() * q).tolist()

    def stability(self):
        return (self.lr * self.lam * 2.0).tolist()
