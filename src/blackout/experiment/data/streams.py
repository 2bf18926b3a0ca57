"""Task streams: a sequence of tasks built over one in-memory dataset.

A task stores only what makes it a task (a pixel permutation, an angle, a class group), never a
copy of the images: its transform is applied to each batch as it is drawn. 100 permuted-MNIST
tasks therefore cost 100 x 784 indices beyond the dataset itself.

- ``permuted``: task t applies a fixed pixel permutation drawn from the seed (optionally task 1 is
  the identity). All classes in every task, one shared head.
- ``split``: task t holds a disjoint group of ``classes_per_task`` classes (in a seeded class
  order, or 0-1, 2-3, ... with ``class_order = "natural"``). By scenario (van de Ven & Tolias 2019): ``class``, labels kept, scored over one head of
  every class; ``domain``, labels renumbered 0..k-1 (the position in the task's sorted class
  list) and scored over one shared head of k outputs; ``task``, labels renumbered the same way
  and scored over the task's own head of k outputs.
- ``rotated``: task t rotates every image by ``(t-1) x angle_step`` degrees (bilinear, the corners
  filled with blank pixels).

With ``mask_unseen`` (class scenario), task t's loss covers only outputs 0..n-1, the n classes of tasks
1 to t, while predictions stay over every output, as in Hsu et al. 2018's incremental-class setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F

from ...errors import ConfigError, DataError
from ..verdict import chance_level, unjudgeable
from .sources import Dataset

if TYPE_CHECKING:
    from ...config import DataConfig


@dataclass(frozen=True)
class Task:
    index: int  # 0-based position in the stream
    perm: torch.Tensor | None = None  # (H*W,) pixel permutation
    angle: float = 0.0  # degrees
    classes: tuple[int, ...] | None = None  # split: the task's classes (original labels)
    head: int | None = None  # task scenario: which output slice scores this task
    head_size: int = 0
    relabel: bool = False  # split, task and domain scenarios: targets are positions within ``classes``
    blank: float = 0.0  # the value of an empty pixel, which a rotation fills in
    seen: int = 0  # mask_unseen: the loss covers outputs 0..seen-1 (the classes seen so far); 0: no mask

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the task's input transform to a batch ``x`` of shape (B, C, H, W)."""
        if self.perm is not None:
            # index_select on a 2-D view: several times faster than x[..., perm] on CPU
            return x.reshape(-1, self.perm.numel()).index_select(1, self.perm).view_as(x)
        if self.angle:
            return rotate(x - self.blank, self.angle) + self.blank if self.blank else rotate(x, self.angle)
        return x

    @property
    def head_range(self) -> tuple[int, int] | None:
        """The output columns this task's loss covers (its head, or the classes seen so far), or None for every output."""
        if self.seen:
            return 0, self.seen
        if self.head is None:
            return None
        return self.head * self.head_size, (self.head + 1) * self.head_size

    @property
    def scored_range(self) -> tuple[int, int] | None:
        """The output columns a prediction is taken over: the task's own head, or every output."""
        return None if self.seen else self.head_range


@dataclass(frozen=True)
class Split:
    """The part of a dataset a task uses: indices into it and the labels to train on."""

    idx: torch.Tensor | None  # None: every sample
    y: torch.Tensor  # targets aligned with idx (renumbered within the task for the task and domain scenarios)


class Stream:
    def __init__(self, cfg: DataConfig, data: Dataset, seed: int):
        self.cfg, self.data = cfg, data
        g = torch.Generator().manual_seed(seed)  # drawn on the CPU, placed with the data
        device = data.x_train.device
        self.tasks: list[Task] = []
        self._splits: dict[tuple[int, str], Split] = {}
        n_pix = data.x_train.shape[2] * data.x_train.shape[3]
        if cfg.stream == "permuted":
            for t in range(cfg.tasks):
                ident = t == 0 and cfg.keep_first
                self.tasks.append(Task(t, perm=None if ident else torch.randperm(n_pix, generator=g).to(device)))
        elif cfg.stream == "rotated":
            self.tasks = [Task(t, angle=t * cfg.angle_step, blank=data.blank) for t in range(cfg.tasks)]
        elif cfg.stream == "split":
            k = cfg.classes_per_task
            if cfg.tasks * k > data.n_classes:
                raise ConfigError(
                    f"tasks: split needs tasks x classes_per_task <= {data.n_classes} classes, got {cfg.tasks} x {k}"
                )
            order = torch.randperm(
                data.n_classes, generator=g
            ).tolist()  # drawn either way: the generator's later draws stay put
            if cfg.class_order == "natural":
                order = list(range(data.n_classes))
            scenario = cfg.resolved_scenario
            for t in range(cfg.tasks):
                cls = tuple(sorted(order[t * k : (t + 1) * k]))
                task = scenario == "task"
                self.tasks.append(
                    Task(
                        t,
                        classes=cls,
                        head=t if task else None,
                        head_size=k if task else 0,
                        relabel=scenario != "class",
                        seen=(t + 1) * k if cfg.mask_unseen and scenario == "class" else 0,
                    )
                )
        self.n_out = cfg.n_out

    def __len__(self) -> int:
        return len(self.tasks)

    def __getstate__(self) -> dict:
        """Pickled without the dataset and what is cut from it (a checkpoint reattaches both: ``attach``)."""
        return {**self.__dict__, "data": None, "_splits": {}}

    def attach(self, data: Dataset) -> None:
        self.data = data

    def chance(self, task: Task) -> float:
        """The task's own chance level (``verdict.chance_level`` of its test labels)."""
        return chance_level(self.split(task, "test").y.cpu().numpy())

    def split(self, task: Task, part: str) -> Split:
        """Indices and targets of ``part`` ("train" or "test") for ``task``; cached per task."""
        key = (task.index if task.classes else -1, part)
        if key not in self._splits:
            y = self.data.y_train if part == "train" else self.data.y_test
            limit = self.cfg.train_limit if part == "train" else self.cfg.test_limit
            if task.classes is None:
                n = min(limit, len(y)) if limit else len(y)
                self._splits[key] = Split(None if n == len(y) else torch.arange(n, device=y.device), y[:n])
            else:
                mask = torch.zeros_like(y, dtype=torch.bool)
                for c in task.classes:
                    mask |= y == c
                idx = mask.nonzero().squeeze(1)
                if limit:
                    idx = idx[:limit]
                target = y[idx]
                if task.relabel:
                    lut = torch.full((self.data.n_classes,), -1, dtype=torch.long, device=y.device)
                    lut[list(task.classes)] = torch.arange(len(task.classes), device=y.device)
                    target = lut[target]
                self._splits[key] = Split(idx, target)
        return self._splits[key]

    def inputs(self, part: str) -> torch.Tensor:
        return self.data.x_train if part == "train" else self.data.x_test

    def batch(
        self, task: Task, part: str, rows: torch.Tensor | slice | None = None, transform: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformed inputs and targets of ``rows`` (positions within the task's split; None: all;
        a slice of a whole-dataset split: views, no copy); untransformed if not ``transform``."""
        s = self.split(task, part)
        x = self.inputs(part)
        if not transform:
            task = Task(task.index)
        if isinstance(rows, slice):
            if s.idx is None:
                return task.transform(x[rows]), s.y[rows]
            rows = torch.arange(len(s.y))[rows]
        if rows is not None:
            rows = rows.to(x.device)
        if rows is None:
            xi = x if s.idx is None else x.index_select(0, s.idx)
            return task.transform(xi), s.y
        src = rows if s.idx is None else s.idx[rows]
        return task.transform(x.index_select(0, src)), s.y.index_select(0, rows)

    def rows_of_tasks(self, tasks: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training samples ``rows[i]`` of tasks ``tasks[i]``, each through its own task's transform."""
        first = self.tasks[int(tasks[0])] if len(tasks) else None
        device = self.data.x_train.device
        tasks, rows = tasks.to(device), rows.to(device)
        if first is not None and first.classes is None and all(t.perm is not None for t in self.tasks):
            s = self.split(first, "train")  # every permuted task trains on the same rows
            src = rows if s.idx is None else s.idx[rows]
            x = self.inputs("train").index_select(0, src)
            perms = self._perms().index_select(0, tasks)  # (n, pixels): each row's own permutation
            x = torch.gather(x.reshape(len(rows), -1), 1, perms).view_as(x)
            return x, s.y.index_select(0, rows)
        xs: list[Any] = [None] * len(rows)
        ys: list[Any] = [None] * len(rows)
        for t in tasks.unique().tolist():
            at = (tasks == t).nonzero().squeeze(1)
            x, y = self.batch(self.tasks[t], "train", rows[at])
            for k, i in enumerate(at.tolist()):
                xs[i], ys[i] = x[k], y[k]
        return torch.stack(xs), torch.stack(ys)

    def _perms(self) -> torch.Tensor:
        if not hasattr(self, "_perm_table"):
            self._perm_table = torch.stack([cast(torch.Tensor, t.perm) for t in self.tasks])
        return self._perm_table


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate a batch (B, C, H, W) about the image centre, bilinear, zero outside."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Streams:
    """One stream per member of a stacked run, each built from its own seed, over one dataset.

    Batches come back stacked, (M, B, C, H, W) inputs and (M, B) targets. While a task trains,
    its transformed training images may be held once per member (``begin``): worth it when the
    task draws every image at least twice, since the transform then costs once instead of every
    batch; the values are the same either way.
    """

    def __init__(self, cfg: DataConfig, data: Dataset, seeds: list[int]):
        self.members = [Stream(cfg, data, s) for s in seeds]
        self.data, self.n_out = data, self.members[0].n_out
        self._held: dict[int, list[torch.Tensor]] = {}  # task -> per member (N, features) transformed images
        self._buffers: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.members[0])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "data": None, "_held": {}, "_buffers": {}}

    def attach(self, data: Dataset) -> None:
        """The dataset again, after unpickling."""
        self.data = data
        for s in self.members:
            s.attach(data)

    def task(self, t: int) -> Task:
        """Member 0's task t: methods read its ``index`` and ``head_range``, which all members share."""
        return self.members[0].tasks[t]

    def n_rows(self, t: int, part: str = "train") -> int:
        sizes = {len(s.split(s.tasks[t], part).y) for s in self.members}
        if len(sizes) != 1:
            raise ValueError("members of a stacked run need tasks of equal size")
        return sizes.pop()

    def check(self, margin: float) -> None:
        """Refuse, before any training, data on which some task's verdict would mean nothing
        (``verdict.unjudgeable``: too few test images, one class, or chance + margin >= 1)."""
        for s in self.members:
            seen = set()  # permuted and rotated tasks share one split: judged once
            for task in s.tasks:
                train, test = s.split(task, "train"), s.split(task, "test")
                if (id(train), id(test)) in seen:
                    continue
                seen.add((id(train), id(test)))
                why = unjudgeable(train.y.cpu().numpy(), test.y.cpu().numpy(), margin)
                if why:
                    raise DataError(f"{self.data.source}: task {task.index + 1}: {why}")

    def chance(self, m: int) -> list[float]:
        s = self.members[m]
        return [s.chance(task) for task in s.tasks]

    def begin(self, t: int, draws: int) -> None:
        """Hold task t's transformed training images when ``draws`` (images the task will draw) >= 2 x its size."""
        self._held.clear()
        n = self.n_rows(t)
        s0 = self.members[0]
        if draws >= 2 * n and s0.tasks[t].perm is not None and s0.split(s0.tasks[t], "train").idx is None:
            self._held[t] = [s.tasks[t].transform(s.inputs("train")).flatten(1) for s in self.members]

    def end(self) -> None:
        self._held.clear()
        self._buffers.clear()

    def batch(self, t: int, rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Training batch of every member: ``rows[m]`` are positions within member m's task-t split."""
        held = self._held.get(t)
        if held is None:
            xs, ys = zip(*(s.batch(s.tasks[t], "train", r) for s, r in zip(self.members, rows)))
            return torch.stack(xs), torch.stack(ys)
        # gather straight into reused buffers: no stacking copy
        shape = (len(rows), len(rows[0]))
        if shape not in self._buffers:
            device = self.data.x_train.device
            self._buffers[shape] = (
                torch.empty(*shape, *self.data.x_train.shape[1:], device=device),
                torch.empty(shape, dtype=torch.long, device=device),
            )
        x, y = self._buffers[shape]
        flat = x.view(*shape, -1)
        for m, (s, r) in enumerate(zip(self.members, rows)):
            r = r.to(x.device)
            torch.index_select(held[m], 0, r, out=flat[m])
            torch.index_select(s.split(s.tasks[t], "train").y, 0, r, out=y[m])
        return x, y

    def sample(
        self, t: int, n: int, gens: list[torch.Generator], part: str = "train"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` distinct random training samples of task t per member, each drawn with its own generator."""
        size = self.n_rows(t, part)
        rows = [torch.randperm(size, generator=g)[: min(n, size)] for g in gens]
        xs, ys = zip(*(s.batch(s.tasks[t], part, r) for s, r in zip(self.members, rows)))
        return torch.stack(xs), torch.stack(ys)

    def select(self, keep: list[int]) -> None:
        self.members = [self.members[i] for i in keep]
        for t, held in self._held.items():
            self._held[t] = [held[i] for i in keep]
