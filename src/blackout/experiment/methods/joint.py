"""Joint training on every task seen so far: the offline upper bound, which stores all the data.

Not a continual-learning method but the reference the others are reported against (as a fraction
of it): while task t trains, every step also trains on the earlier tasks, drawn uniformly at
random from the union of their training sets, each sample through its own task's transform. It
keeps every training sample it has seen (``memory``), so it says what a network of this size and
schedule can hold at all, not what can be learned without stored data.

``joint_batch``: ``per-task`` (default) adds a batch of the step's size per earlier task, so every
task seen keeps the exposure per step it had when it was new (a step at task t costs t times
one of task 1); ``fixed`` keeps the step's size, its share of the current task 1/t, at the cost of
any other method (then new tasks are learned from fewer samples, so the bound is looser).
The weights carry over from task to task (the cumulative form), the schedule is the run's.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...errors import ConfigError
from ...settings import Setting
from .base import Method, kept
from .replay import single_head


class Joint(Method):
    name = "joint"
    settings = {
        "joint_batch": Setting(
            "per-task",
            "joint: a batch per earlier task each step, or one batch of the step's size shared by all tasks seen",
            choices=("per-task", "fixed"),
        )
    }

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.fixed = configs[0].method.joint_batch == "fixed"
        self.data: Any = None  # the run's Streams, from begin_task
        self.sizes: list[int] = []  # training rows of each task seen or training

    @classmethod
    def check(cls, cfg) -> None:
        single_head(cls.name, cfg)  # one head: a batch mixes tasks
        if cfg.model.gating:
            raise ConfigError(
                f"gating: {cls.name} mixes tasks in one batch, which one task's gate cannot serve; "
                "compare it with gated runs ungated"
            )

    def begin_task(self, net, task, data) -> None:
        self.data = data
        self.sizes = [data.n_rows(j) for j in range(task.index + 1)]

    def batch(self, net, x, y, task):
        t = task.index
        if t == 0:
            return x, y
        size = x.shape[1]
        if self.fixed:
            mine = math.ceil(size / (t + 1))
            x, y, n = x[:, :mine], y[:, :mine], size - mine
        else:
            n = size * t
        sizes = torch.tensor(self.sizes[:t], dtype=torch.float64)
        xs, ys = [], []
        for s, g in zip(self.data.members, self.gens):
            tasks = torch.randint(t, (n,), generator=g)
            rows = (torch.rand(n, generator=g, dtype=torch.float64) * sizes[tasks]).long()
            xm, ym = s.rows_of_tasks(tasks, rows)
            xs.append(xm)
            ys.append(ym)
        return torch.cat([x, torch.stack(xs)], 1), torch.cat([y, torch.stack(ys)], 1)

    def memory(self):
        """Every training sample of the tasks seen, counted as images."""
        samples = sum(self.sizes[: self.tasks_seen])
        return [kept(samples * self.data.data.x_train[0].numel(), samples) for _ in range(self.M)]
