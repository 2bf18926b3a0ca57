"""Experience replay and A-GEM over one small episodic memory per run, filled by reservoir sampling.

``Memory`` keeps at most ``memory`` (task, row) pairs, never image copies: the inputs are rebuilt
through each task's transform when drawn, so the memory costs a few kilobytes. It is filled by
reservoir sampling (Vitter 1985, Algorithm R), so every training sample seen so far is held with
equal probability size / seen. Each task's training set enters the reservoir after the task
(``consolidate``), once per row, in a seeded random order: when a later task reads it, the memory
is the same uniform sample of all past rows that streaming each row once during training would
give, except that a task's own rows are not in the memory while it trains, where they would only
repeat the current batch. Memory samples keep their own task's transform and, in a gated network,
their own task's gate (``gating``), so both methods need a single-head stream (a multi-head memory
row would need its own head within one batch).

- ``replay`` (Chaudhry et al. 2019, "On tiny episodic memories"; Rolnick et al. 2019): every step
  trains on the current batch (B samples) and a memory batch (min(B, memory held) samples) as one
  batch, i.e. on the mean loss over all of them.
- ``agem`` (Chaudhry et al., ICLR 2019, Eq. 11): if the step's gradient g would raise the loss on a
  memory batch (g . g_ref < 0), it is projected to g - (g . g_ref / g_ref . g_ref) g_ref.
  Convention: the reference batch has the training batch size, and the memory is one reservoir
  over all past samples rather than equal slots per task.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from ...errors import ConfigError
from ...settings import Setting
from .. import gating
from .base import Method, kept

MEMORY = {
    "memory": Setting(
        500,
        "total episodic-memory size in samples (replay, agem: one reservoir; gem: equal slots per task)",
        check=lambda n: n >= 1,
        expected="at least 1 sample",
    )
}


class Memory:
    def __init__(self, size: int, gen: torch.Generator):
        self.size, self.gen = size, gen
        self.task = torch.empty(0, dtype=torch.long)
        self.row = torch.empty(0, dtype=torch.long)
        self.seen = 0

    def __len__(self) -> int:
        return len(self.task)

    def add(self, task: int, rows: torch.Tensor) -> None:
        """Algorithm R over ``rows``, in the order given."""
        room = max(0, min(self.size - len(self), len(rows)))
        self.task = torch.cat([self.task, torch.full((room,), task, dtype=torch.long)])
        self.row = torch.cat([self.row, rows[:room]])
        rest = rows[room:]
        if len(rest):
            # item number k (1-based, counting every item seen) replaces slot j ~ U{0..k-1} when j < size
            k = torch.arange(self.seen + room + 1, self.seen + len(rows) + 1, dtype=torch.float64)
            j = (torch.rand(len(rest), generator=self.gen, dtype=torch.float64) * k).long()
            keep = j < self.size
            slots, new = j[keep], rest[keep]
            # a later item overwrites an earlier one in the same slot, as the sequential algorithm does
            uniq, inv = torch.unique(slots, return_inverse=True)
            last = torch.full((len(uniq),), -1).scatter_reduce_(0, inv, torch.arange(len(slots)), reduce="amax")
            self.task[uniq] = task
            self.row[uniq] = new[last]
        self.seen += len(rows)

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        pick = torch.randperm(len(self), generator=self.gen)[: min(n, len(self))]
        return self.task[pick], self.row[pick]


def single_head(name: str, cfg) -> None:
    """Reject a multi-head split stream for method ``name``, whose batches mix tasks under one head."""
    if cfg.data.stream == "split" and cfg.data.multi_head:
        raise ConfigError(
            f"method: {name} needs a single-head stream (its memory mixes tasks in one batch); "
            "for a multi-head split stream use lwf or a penalty method"
        )


class Replay(Method):
    name = "replay"
    settings = MEMORY
    batchable = True

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.memories = [Memory(c.method.memory, g) for c, g in zip(configs, self.gens)]
        self.data: Any = None  # the run's Streams, from begin_task

    @classmethod
    def check(cls, cfg) -> None:
        single_head(cls.name, cfg)

    def begin_task(self, net, task, data) -> None:
        self.data = data

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n memory samples per member, each through its own task's transform, and their tasks:
        inputs (M, n, ...), labels (M, n), tasks (M, n)."""
        drawn = [mem.draw(n) for mem in self.memories]
        xs, ys = zip(*(s.rows_of_tasks(*d) for s, d in zip(self.data.members, drawn)))
        return torch.stack(xs), torch.stack(ys), torch.stack([tasks for tasks, _ in drawn])

    def batch(self, net, x, y, task):
        held = min(len(m) for m in self.memories)
        if not held:
            return x, y
        xm, ym, tasks = self.draw(min(x.shape[1], held))
        # each sample under its own task's gate, until the next batch (the loop restores task t's after the task)
        gating.use(net, torch.cat([torch.full(x.shape[:2], task.index), tasks], 1))
        return torch.cat([x, xm], 1), torch.cat([y, ym], 1)

    def consolidate(self, net, task, data):
        self.data = data
        n = data.n_rows(task.index)
        for mem in self.memories:
            mem.add(task.index, torch.randperm(n, generator=mem.gen))
        return super().consolidate(net, task, data)

    def memory(self):
        """The samples held; counted as the images they stand for (held here as (task, row) indices)."""
        features = self.data.data.x_train[0].numel() if self.data is not None else 0
        return [kept(len(mem) * features, len(mem)) for mem in self.memories]

    def select(self, keep):
        super().select(keep)
        self.memories = [self.memories[i] for i in keep]


class AGEM(Replay):
    name = "agem"
    needs_grads = True

    def batch(self, net, x, y, task):
        return x, y

    @torch.no_grad()
    def adjust(self, net, grads, task) -> None:
        from ..step import loss_grads

        held = min(len(m) for m in self.memories)
        if not held:
            return
        xm, ym, tasks = self.draw(min(self.configs[0].train.batch_size, held))
        with gating.under(net, tasks):
            _, ref, _ = loss_grads(net, self, xm, ym, task)
        project_(grads, ref)


def project_(grads: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
    """A-GEM's projection per member, in place: g - (g . r / r . r) r where g . r < 0."""
    dot = cast(torch.Tensor, sum((g * r).flatten(1).sum(1) for g, r in zip(grads, ref)))
    norm = cast(torch.Tensor, sum(r.pow(2).flatten(1).sum(1) for r in ref))
    coef = torch.where(dot < 0, dot / norm.clamp_min(1e-30), torch.zeros_like(dot))  # (M,), on the grads' device
    if bool((coef != 0).any()):
        for g, r in zip(grads, ref):
            g.sub_(Method.per_member(coef, g) * r)
