"""Experience replay and A-GEM over one small episodic memory filled by reservoir sampling.

``Memory`` keeps at most ``memory`` (task, row) pairs, never image copies: the inputs are rebuilt
through each task's transform when drawn, so the memory costs a few kilobytes. It is filled by
reservoir sampling (Vitter 1985, Algorithm R), so every training sample seen so far is held with
equal probability size / seen. The loop does not hand methods the rows it trains on, so each task's
training set enters the reservoir in ``consolidate``, after the task, once per row, in a seeded random
order. When a later task reads it, the memory is therefore the same uniform sample of all past rows
that streaming each row once during training would give; the one difference is that a task's own
rows are not in the memory while it trains, where they would only repeat the current batch.

- ``replay`` (Chaudhry et al. 2019, "On tiny episodic memories"; Rolnick et al. 2019): every step
  trains on the current batch (B samples) and a memory batch (M = min(B, memory held) samples, each
  through its own task's transform and head) as one batch, i.e. on the mean over all B + M samples
  (B L_cur + M L_mem) / (B + M). The loop's loss is L_cur + penalty and ``penalty`` never sees the
  labels, so it cannot return the exact difference M (L_mem - L_cur) / (B + M). Instead it returns
  (M / B) L_mem, whose sum with L_cur is (B + M) / B times that mean, and ``after_backward`` scales
  the gradient by B / (B + M): the optimizer receives exactly the concatenated batch's gradient.
- ``agem`` (Chaudhry et al., ICLR 2019, Eq. 11): if the step's gradient g would raise the loss on a
  memory batch (g . g_ref < 0), it is projected to g - (g . g_ref / g_ref . g_ref) g_ref.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Method


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
            for slot, r in zip(j.tolist(), rest.tolist()):
                if slot < self.size:
                    self.task[slot], self.row[slot] = task, r
        self.seen += len(rows)

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        pick = torch.randperm(len(self), generator=self.gen)[: min(n, len(self))]
        return self.task[pick], self.row[pick]


class Replay(Method):
    name = "replay"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.memory = Memory(cfg.method.memory, self.gen)
        self.stream = None
        self.batch_size = cfg.train.batch_size
        self.scale = 1.0  # B / (B + M) of the current step

    def memory_loss(self, model, n: int) -> torch.Tensor:
        """Mean cross-entropy of ``n`` memory samples, each through its own task's transform and head."""
        tasks, rows = self.memory.draw(n)
        total = 0.0
        for t in tasks.unique().tolist():
            task = self.stream.tasks[t]
            x, y = self.stream.batch(task, "train", rows[tasks == t])
            total = total + F.cross_entropy(task.head_slice(model(x)), y, reduction="sum")
        return total / len(rows)

    def penalty(self, model, x, task):
        self.scale = 1.0
        if not len(self.memory):
            return None
        b, m = x.shape[0], min(x.shape[0], len(self.memory))
        self.scale = b / (b + m)
        return (m / b) * self.memory_loss(model, m)

    def after_backward(self, model, task) -> None:
        if self.scale != 1.0:
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.mul_(self.scale)

    def consolidate(self, model, task, stream):
        self.stream = stream
        n = len(stream.split(task, "train").y)
        self.memory.add(task.index, torch.randperm(n, generator=self.gen))
        return {}


class AGEM(Replay):
    name = "agem"

    def penalty(self, model, x, task):
        return None

    def after_backward(self, model, task) -> None:
        if not len(self.memory):
            return
        params = [p for p in model.parameters() if p.grad is not None]
        ref = torch.autograd.grad(self.memory_loss(model, self.batch_size), params, allow_unused=True)
        g = torch.cat([p.grad.reshape(-1) for p in params])
        r = torch.cat([torch.zeros_like(p).reshape(-1) if q is None else q.reshape(-1) for p, q in zip(params, ref)])
        projected = project(g, r)
        if projected is not g:
            offset = 0
            for p in params:
                p.grad.copy_(projected[offset : offset + p.numel()].view_as(p))
                offset += p.numel()


def project(g: torch.Tensor, g_ref: torch.Tensor) -> torch.Tensor:
    """A-GEM's projection: g unchanged if g . g_ref >= 0, else g - (g . g_ref / g_ref . g_ref) g_ref."""
    dot = torch.dot(g, g_ref)
    if dot >= 0:
        return g
    return g - (dot / torch.dot(g_ref, g_ref).clamp_min(1e-30)) * g_ref
