"""The quadratic-penalty family: (lambda/2) sum_i A_i (theta_i - mu_i)^2 + const.

EWC, online EWC, L2, SI and MAS differ only in the importance they measure after a task and in
how it accumulates; the penalty, its constant-cost merged form and the stability number are here.

- ``anchor = "merged"`` (EWC): the sum over past tasks  sum_t F_t (theta - theta_t)^2  equals
  A theta^2 - 2 B theta + C with A = sum F_t, B = sum F_t theta_t, C = sum F_t theta_t^2, i.e.
  A (theta - B/A)^2 + (C - B^2/A). Keeping A, mu = B/A and the constant makes a step's cost and
  memory independent of the number of past tasks; the constant is kept in float64 because
  C - B^2/A cancels.
- ``anchor = "latest"`` (online EWC, L2, SI, MAS): A accumulates (decayed by ``gamma``) and the
  anchor is the weights after the last task.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.streams import Stream, Task
from .base import Method


class Quadratic(Method):
    anchor = "latest"  # or "merged"
    decay = 1.0  # A <- decay * A + importance

    def __init__(self, cfg, model: nn.Module):
        super().__init__(cfg, model)
        params = list(model.parameters())
        self.A = [torch.zeros_like(p) for p in params]
        self.mu = [p.detach().clone() for p in params]
        self.B = [torch.zeros_like(p, dtype=torch.float64) for p in params]
        self.C = torch.zeros((), dtype=torch.float64)
        self.const = 0.0
        self.tasks_seen = 0

    def importance(self, model: nn.Module, task: Task, stream: Stream) -> list[torch.Tensor]:
        raise NotImplementedError

    def consolidate(self, model: nn.Module, task: Task, stream: Stream) -> dict[str, Any]:
        imp = self.importance(model, task, stream)
        theta = [p.detach() for p in model.parameters()]
        for i, (a, f, th) in enumerate(zip(self.A, imp, theta)):
            a.mul_(self.decay).add_(f)
            if self.anchor == "merged":
                self.B[i].add_(f.double() * th.double())
            else:
                self.mu[i].copy_(th)
        if self.anchor == "merged":
            self.C += sum((f.double() * th.double().pow(2)).sum() for f, th in zip(imp, theta))
            for a, b, mu, th in zip(self.A, self.B, self.mu, theta):
                mu.copy_(torch.where(a > 0, b / a.double().clamp_min(1e-300), th.double()).to(mu.dtype))
            self.const = float(self.C - sum((b.pow(2) / a.double().clamp_min(1e-300))[a > 0].sum() for a, b in zip(self.A, self.B)))
        self.tasks_seen += 1
        flat = torch.cat([f.reshape(-1) for f in imp])
        return {"fisher_mean": flat.mean().item(), "fisher_max": flat.max().item(),
                "importance_max": max(a.max().item() for a in self.A)}

    def quadratic(self, model: nn.Module) -> torch.Tensor:
        """sum_i A_i (theta_i - mu_i)^2, differentiable in the model's parameters."""
        return sum(((p - mu).pow(2) * a).sum() for p, a, mu in zip(model.parameters(), self.A, self.mu))

    def penalty(self, model: nn.Module, x: torch.Tensor, task: Task) -> torch.Tensor | None:
        if self.tasks_seen == 0 or self.lam == 0:
            return None
        return 0.5 * self.lam * (self.quadratic(model) + self.const)

    def penalty_value(self, model: nn.Module) -> float:
        if self.tasks_seen == 0:
            return 0.0
        with torch.no_grad():
            return 0.5 * self.lam * (self.quadratic(model).item() + self.const)

    def stability(self) -> float | None:
        if self.tasks_seen == 0:
            return 0.0
        return self.lr * self.lam * max(a.max().item() for a in self.A)
