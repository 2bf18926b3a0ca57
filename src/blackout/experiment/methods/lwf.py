"""Learning without Forgetting (Li & Hoiem, ECCV 2016 / TPAMI 2017, Eqs. 2-3).

Only for multi-head split streams: after each task a frozen copy of the network is kept, and while
a new task is trained, the outputs of every previous task's head on the *new* task's inputs are
held near the frozen copy's by knowledge distillation at temperature T:

    lambda * sum_{old heads h} T^2 * mean_n CE( softmax(old_h(x_n) / T), log_softmax(new_h(x_n) / T) ).

Convention: the T^2 factor (Hinton et al. 2015) keeps the distillation gradients' scale independent
of T, so this lambda is T^2 times the lambda of Li & Hoiem's loss. The distillation term depends on
the network's outputs, so this method trains through autograd (its ``loss``). In a gated network an
old head is scored under its own task's gate, so both copies' outputs for it are taken under that
gate (``gating``): one more forward pass of each copy per old head.
"""

from __future__ import annotations

import copy

import torch

from ...errors import ConfigError
from ...settings import Setting
from .. import gating
from .base import Method, kept, task_loss
from .quadratic import lam_setting


def distillation(old_logits: torch.Tensor, new_logits: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 x mean cross-entropy between the temperature-softened old and new distributions, per member."""
    target = (old_logits / T).softmax(-1)
    return -(target * (new_logits / T).log_softmax(-1)).sum(-1).mean(-1) * T * T


class LwF(Method):
    name = "lwf"
    settings = {
        **lam_setting(1.0, "distillation strength lambda"),
        "temperature": Setting(2.0, "distillation temperature", check=lambda t: t > 0, expected="temperature > 0"),
    }

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.lam = self.value("lam")
        self.T = configs[0].method.temperature
        self.old = None
        self.old_heads: list[tuple[int, int]] = []

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.data.stream != "split" or not cfg.data.multi_head:
            raise ConfigError("method: lwf needs a multi-head split stream (--stream split --scenario task)")

    def loss(self, net, x, y, task):
        logits = net(x)
        loss = task_loss(logits, y, task)
        if self.old is None:
            return loss
        with torch.no_grad():
            old = self.old(x)
        kd: torch.Tensor | float = 0.0
        new = logits
        for h, (lo, hi) in enumerate(self.old_heads):  # head h is task h's
            if net.gating is not None:  # scored under task h's gate, so distilled under it
                with gating.under(net, h), gating.under(self.old, h):
                    new = net(x)
                    with torch.no_grad():
                        old = self.old(x)
            kd = kd + distillation(old[..., lo:hi], new[..., lo:hi], self.T)
        return loss + self.lam * kd

    def consolidate(self, net, task, data):
        self.old = copy.deepcopy(net).eval()
        for p in self.old.parameters():
            p.requires_grad_(False)
        self.old_heads.append(task.head_range)
        return super().consolidate(net, task, data)

    def memory(self):
        return [kept(self.param_floats if self.old is not None else 0) for _ in range(self.M)]  # the frozen copy

    def select(self, keep):
        super().select(keep)
        self.lam = self.lam[torch.tensor(keep)]
        if self.old is not None:
            self.old.select(keep)
