"""Learning without Forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2017, Eqs. 2-3).

Only for multi-head split streams: after each task a frozen copy of the network is kept, and while
a new task is trained, the outputs of every previous task's head on the *new* task's inputs are
held near the frozen copy's by knowledge distillation at temperature T:

    lambda * sum_{old heads h} T^2 * mean_n CE( softmax(old_h(x_n) / T), log_softmax(new_h(x_n) / T) ).

The T^2 factor (Hinton et al. 2015) keeps the distillation gradients' scale independent of T.
"""

from __future__ import annotations

import copy

import torch

from ..errors import ConfigError
from .base import Method


def distillation(old_logits: torch.Tensor, new_logits: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 x mean cross-entropy between the temperature-softened old and new distributions."""
    target = (old_logits / T).softmax(-1)
    return -(target * (new_logits / T).log_softmax(-1)).sum(-1).mean() * T * T


class LwF(Method):
    name = "lwf"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.T = cfg.method.temperature
        self.old = None
        self.old_tasks: list = []

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.data.stream != "split" or not cfg.data.multi_head:
            raise ConfigError("method: lwf needs a multi-head split stream (--stream split --multi-head)")

    def penalty(self, model, x, task):
        if self.old is None or self.lam == 0:
            return None
        with torch.no_grad():
            old = self.old(x)
        new = model(x)
        return self.lam * sum(distillation(t.head_slice(old), t.head_slice(new), self.T) for t in self.old_tasks)

    def consolidate(self, model, task, stream):
        self.old = copy.deepcopy(model).eval()
        for p in self.old.parameters():
            p.requires_grad_(False)
        self.old_tasks.append(task)
        return {}
