"""The method interface: what a continual-learning method may do to the plain SGD loop.

A method is one small module: a subclass of ``Method`` overriding at most three hooks, and one
entry in ``METHODS`` (see ``__init__``). The training loop calls, in order, for every step::

    loss = task_loss + method.penalty(model, x, task)    # None adds nothing
    loss.backward(); method.after_backward(model, task)   # e.g. A-GEM's gradient projection
    optimizer.step(); method.after_step(model)            # e.g. SI's path integral, a proximal step

and after each task ``method.consolidate(model, task, stream)``, which returns its diagnostics.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import RunConfig
from ..data.streams import Stream, Task


class Method:
    name = "base"

    def __init__(self, cfg: RunConfig, model: nn.Module):
        self.cfg = cfg
        self.lam = cfg.method.lam
        self.lr = cfg.train.lr
        # Own generator: Fisher samples and labels do not perturb the batch order of training.
        self.gen = torch.Generator().manual_seed(cfg.train.seed * 7919 + 17)

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        """Reject settings this method cannot honour (raise ConfigError). Called by config validation."""

    def penalty(self, model: nn.Module, x: torch.Tensor, task: Task) -> torch.Tensor | None:
        return None

    def after_backward(self, model: nn.Module, task: Task) -> None:
        pass

    def after_step(self, model: nn.Module) -> None:
        pass

    def consolidate(self, model: nn.Module, task: Task, stream: Stream) -> dict[str, Any]:
        return {}

    def penalty_value(self, model: nn.Module) -> float:
        """The penalty's current value for diagnostics (also for methods that apply it by a proximal step)."""
        return 0.0

    def stability(self) -> float | None:
        """s = lr x lambda x the largest curvature the penalty adds; gradient descent is unstable past 2."""
        return None


def sample_rows(stream: Stream, task: Task, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` distinct random positions in the task's training split (all of them if it is smaller)."""
    size = len(stream.split(task, "train").y)
    return torch.randperm(size, generator=gen)[: min(n, size)]
