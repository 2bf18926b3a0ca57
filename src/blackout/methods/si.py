"""Synaptic Intelligence (Zenke, Poole & Ganguli, ICML 2017, Eqs. 4-5).

While task mu is trained, each weight accumulates its contribution to the drop in the task loss
along the optimisation path, omega_i = -sum_steps g_i * delta_theta_i (g the gradient of the task
loss alone). After the task, Omega_i += omega_i / (Delta_i^2 + xi), Delta_i the weight's total
change over the task, and the penalty is c sum_i Omega_i (theta_i - theta~_i)^2 with theta~ the
weights after the last task. Here c = ``lam`` and A = 2 Omega, so (lambda/2) A matches c Omega.

The loop's gradient includes the SI penalty; the task-loss gradient is recovered by subtracting the
penalty's gradient in closed form, lambda A (theta_prev - theta~), at the pre-step weights.
delta_theta is the step actually taken, so the path integral holds for Adam as for SGD. As in the
paper omega is not clipped: a weight that noise moved mostly uphill gets a negative importance.
"""

from __future__ import annotations

import torch

from .quadratic import Quadratic


class SI(Quadratic):
    name = "si"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.xi = cfg.method.xi
        self.omega = [torch.zeros_like(p) for p in model.parameters()]
        self.start = [p.detach().clone() for p in model.parameters()]
        self.prev = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def after_step(self, model) -> None:
        penalised = self.tasks_seen > 0 and self.lam > 0
        for p, w, prev, a, mu in zip(model.parameters(), self.omega, self.prev, self.A, self.mu):
            if p.grad is not None:
                g = p.grad - self.lam * a * (prev - mu) if penalised else p.grad
                w.sub_(g * (p - prev))
            prev.copy_(p)

    @torch.no_grad()
    def importance(self, model, task, stream):
        out = []
        for p, w, s, prev in zip(model.parameters(), self.omega, self.start, self.prev):
            out.append(2 * w / ((p - s).pow(2) + self.xi))
            w.zero_()
            s.copy_(p)
            prev.copy_(p)
        return out
