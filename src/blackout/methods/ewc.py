"""Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017, Eq. 3 with one term per past task).

Penalty (lambda/2) sum_t sum_i F_t,i (theta_i - theta*_t,i)^2, F_t the diagonal Fisher after task t
(``fisher.py``). ``ewc_form = "merged"`` keeps the identical constant-cost form (``quadratic.py``);
``"separate"`` keeps every (F_t, theta*_t) pair as published code does, for comparison.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.streams import Stream, Task
from ..fisher import fisher_diag, sample_labels
from .base import sample_rows
from .quadratic import Quadratic


def task_fisher(method, model: nn.Module, task: Task, stream: Stream) -> list[torch.Tensor]:
    """Diagonal Fisher of ``model`` on ``fisher_samples`` random training samples of ``task``."""
    me = method.cfg.method
    x, y = stream.batch(task, "train", sample_rows(stream, task, me.fisher_samples, method.gen))
    labels = sample_labels(model, x, y, me.fisher_labels, task.head_slice, method.gen)
    return fisher_diag(model, x, labels, task.head_slice)


class EWC(Quadratic):
    name = "ewc"
    anchor = "merged"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.separate = cfg.method.ewc_form == "separate"
        self.terms: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []

    def importance(self, model, task, stream):
        fisher = task_fisher(self, model, task, stream)
        if self.separate:
            self.terms.append((fisher, [p.detach().clone() for p in model.parameters()]))
        return fisher

    def quadratic(self, model):
        if not self.separate:
            return super().quadratic(model)
        return sum(((p - th).pow(2) * f).sum() for fs, ths in self.terms for p, f, th in zip(model.parameters(), fs, ths))

    def penalty(self, model, x, task):
        if self.separate and self.tasks_seen and self.lam:
            return 0.5 * self.lam * self.quadratic(model)
        return super().penalty(model, x, task)

    def penalty_value(self, model):
        if self.separate:
            with torch.no_grad():
                return 0.5 * self.lam * float(self.quadratic(model)) if self.terms else 0.0
        return super().penalty_value(model)
