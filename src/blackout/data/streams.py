"""Task streams: a sequence of tasks built over one in-memory dataset.

A task stores only what makes it a task (a pixel permutation, an angle, a class group), never a
copy of the images: its transform is applied to each batch as it is drawn. 100 permuted-MNIST
tasks therefore cost 100 x 784 indices beyond the dataset itself.

- ``permuted``: task t applies a fixed pixel permutation drawn from the seed (optionally task 1 is
  the identity). All classes in every task, one shared head.
- ``split``: task t holds a disjoint group of ``classes_per_task`` classes (in a seeded class
  order). Single-head: labels kept, scored over every output (class-incremental). Multi-head:
  labels renumbered 0..k-1 and scored over the task's own head (task-incremental).
- ``rotated``: task t rotates every image by ``(t-1) x angle_step`` degrees (bilinear, zero fill).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import DataConfig
from ..errors import ConfigError
from .sources import Dataset


@dataclass(frozen=True)
class Task:
    index: int  # 0-based position in the stream
    perm: torch.Tensor | None = None  # (H*W,) pixel permutation
    angle: float = 0.0  # degrees
    classes: tuple[int, ...] | None = None  # split: the task's classes (original labels)
    head: int | None = None  # multi-head: which output slice scores this task
    head_size: int = 0

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the task's input transform to a batch ``x`` of shape (B, C, H, W)."""
        if self.perm is not None:
            # index_select on a 2-D view: several times faster than x[..., perm] on CPU
            return x.reshape(-1, self.perm.numel()).index_select(1, self.perm).view_as(x)
        if self.angle:
            return rotate(x, self.angle)
        return x

    def head_slice(self, logits: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            return logits
        return logits[:, self.head * self.head_size : (self.head + 1) * self.head_size]


@dataclass(frozen=True)
class Split:
    """The part of a dataset a task uses: indices into it and the labels to train on."""

    idx: torch.Tensor | None  # None: every sample
    y: torch.Tensor  # targets aligned with idx (remapped for multi-head)


class Stream:
    def __init__(self, cfg: DataConfig, data: Dataset, seed: int):
        self.cfg, self.data = cfg, data
        g = torch.Generator().manual_seed(seed)
        self.tasks: list[Task] = []
        self._splits: dict[tuple[int, str], Split] = {}
        n_pix = data.x_train.shape[2] * data.x_train.shape[3]
        if cfg.stream == "permuted":
            for t in range(cfg.tasks):
                ident = t == 0 and cfg.keep_first
                self.tasks.append(Task(t, perm=None if ident else torch.randperm(n_pix, generator=g)))
        elif cfg.stream == "rotated":
            self.tasks = [Task(t, angle=t * cfg.angle_step) for t in range(cfg.tasks)]
        elif cfg.stream == "split":
            k = cfg.classes_per_task
            if cfg.tasks * k > data.n_classes:
                raise ConfigError(
                    f"tasks: split needs tasks x classes_per_task <= {data.n_classes} classes, got {cfg.tasks} x {k}"
                )
            order = torch.randperm(data.n_classes, generator=g).tolist()
            for t in range(cfg.tasks):
                cls = tuple(sorted(order[t * k : (t + 1) * k]))
                self.tasks.append(Task(t, classes=cls, head=t if cfg.multi_head else None, head_size=k if cfg.multi_head else 0))
        self.n_out = data.n_classes if not (cfg.stream == "split" and cfg.multi_head) else cfg.tasks * cfg.classes_per_task

    def __len__(self) -> int:
        return len(self.tasks)

    def chance(self, task: Task) -> float:
        """Accuracy of guessing uniformly over the outputs the task is scored on."""
        return 1.0 / (task.head_size if task.head is not None else self.n_out)

    def split(self, task: Task, part: str) -> Split:
        """Indices and targets of ``part`` ("train" or "test") for ``task``; cached per task."""
        key = (task.index if task.classes else -1, part)
        if key not in self._splits:
            y = self.data.y_train if part == "train" else self.data.y_test
            limit = self.cfg.train_limit if part == "train" else self.cfg.test_limit
            if task.classes is None:
                n = min(limit, len(y)) if limit else len(y)
                self._splits[key] = Split(None if n == len(y) else torch.arange(n), y[:n])
            else:
                mask = torch.zeros_like(y, dtype=torch.bool)
                for c in task.classes:
                    mask |= y == c
                idx = mask.nonzero().squeeze(1)
                if limit:
                    idx = idx[:limit]
                target = y[idx]
                if task.head is not None:
                    lut = torch.full((self.data.n_classes,), -1, dtype=torch.long)
                    lut[list(task.classes)] = torch.arange(len(task.classes))
                    target = lut[target]
                self._splits[key] = Split(idx, target)
        return self._splits[key]

    def inputs(self, part: str) -> torch.Tensor:
        return self.data.x_train if part == "train" else self.data.x_test

    def batch(self, task: Task, part: str, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformed inputs and targets of ``rows`` (positions within the task's split; None: all)."""
        s = self.split(task, part)
        x = self.inputs(part)
        if rows is None:
            xi = x if s.idx is None else x.index_select(0, s.idx)
            return task.transform(xi), s.y
        src = rows if s.idx is None else s.idx[rows]
        return task.transform(x.index_select(0, src)), s.y.index_select(0, rows)


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate a batch (B, C, H, W) about the image centre, bilinear, zero outside."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
