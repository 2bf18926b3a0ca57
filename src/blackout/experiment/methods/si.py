"""Synaptic Intelligence (Zenke, Poole & Ganguli, ICML 2017, Eqs. 4-5).

While task mu is trained, each weight accumulates its contribution to the drop in the task loss
along the optimisation path, omega_i = -sum_steps g_i * delta_theta_i (g the gradient of the task
loss alone, which is what ``adjust`` sees before the penalty's gradient is added). After the task,
Omega_i += omega_i / (Delta_i^2 + xi), Delta_i the weight's total change over the task, and the
penalty is c sum_i Omega_i (theta_i - theta~_i)^2 with theta~ the weights after the last task.
Here c = ``lam`` and A = 2 Omega, so (lambda/2) A matches c Omega. delta_theta is the step
actually taken, so the path integral holds for Adam as for SGD. As in the paper omega is not
clipped: a weight that noise moved mostly uphill gets a negative importance.
"""

from __future__ import annotations

from typing import Any

import torch

from ...settings import Setting
from .quadratic import Quadratic, lam_setting


class SI(Quadratic):
    name = "si"
    settings = {
        **lam_setting(0.1, "surrogate-loss strength c"),
        "xi": Setting(0.1, "damping xi of the path-integral importance", check=lambda v: v > 0, expected="xi > 0"),
    }
    stacked = (*Quadratic.stacked, "omega", "start", "prev", "xi")
    needs_grads = True
    kept_vectors = 4  # A, the anchor, the path integral omega and the previous step's weights

    def __init__(self, configs, net):
        super().__init__(configs, net)
        params = [p.detach() for p in net.params()]
        self.xi = self.value("xi")
        self.omega = [torch.zeros_like(p) for p in params]
        self.start = [p.clone() for p in params]
        self.prev = [p.clone() for p in params]
        self.task_grads: Any = None  # this step's gradients, from adjust

    @torch.no_grad()
    def adjust(self, net, grads, task) -> None:
        # with SGD the penalty is a map on the weights and leaves the gradients alone; Adam adds it to them
        self.task_grads = [g.clone() for g in grads] if self.adam else grads
        super().adjust(net, grads, task)

    @torch.no_grad()
    def after_step(self, net, step) -> None:
        for p, w, prev, g in zip(net.params(), self.omega, self.prev, self.task_grads):
            w.sub_(g * (p - prev))
            prev.copy_(p)

    @torch.no_grad()
    def importance(self, net, task, data):
        out = []
        for p, w, s, prev in zip(net.params(), self.omega, self.start, self.prev):
            out.append(2 * w / ((p - s).pow(2) + self.per_member(self.xi, w)))
            w.zero_()
            s.copy_(p)
            prev.copy_(p)
        return out
