"""The sequential experiment: ``run(config) -> Result``.

One loop over the stream: train task t, check finiteness, consolidate, evaluate the tasks so far,
fill row t of the accuracy matrix, check for blackout. A NaN is a result, never an exception.
``Experiment`` holds one run's state so that ``ensemble.py`` can train several runs in one batched
model and still consolidate, evaluate and judge each exactly as ``run`` does.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__, detect, metrics
from .config import RunConfig, TrainConfig
from .data.sources import load_dataset
from .data.streams import Stream, Task
from .methods import METHODS, Method
from .models import build_model, flat_params, n_params
from .result import Result

EVAL_CHUNK = 4096


def run(cfg: RunConfig, data_dir: str | None = None, on_task: Callable[[int, np.ndarray], None] | None = None) -> Result:
    """Train one network through ``cfg.data.tasks`` tasks; ``on_task(t, row)`` reports progress."""
    ex = Experiment(cfg, data_dir)
    for t, task in enumerate(ex.stream.tasks):
        stability = ex.method.stability()  # the curvature in force while training this task
        tic = time.perf_counter()
        loss = train_task(ex.model, ex.method, ex.stream, task, cfg.train, ex.batch_gen)
        ex.clock["train"] += time.perf_counter() - tic
        ex.end_task(t, loss, stability, tic)  # consolidate, evaluate, fill row t, judge
        if on_task:
            on_task(t, ex.R[t])
        if ex.stopped:
            break
    return ex.result()


class Experiment:
    """One run's data, model, method, accuracy matrix and diagnostics."""

    def __init__(self, cfg: RunConfig, data_dir: str | None = None):
        start = time.perf_counter()
        self.cfg, self.start = cfg, start
        self.clock = {"data": 0.0, "train": 0.0, "fisher": 0.0, "eval": 0.0}
        self.data = load_dataset(cfg.data.dataset, data_dir)
        self.stream = Stream(cfg.data, self.data, cfg.seed)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, tuple(self.data.x_train.shape[1:]), self.stream.n_out)
        self.method: Method = METHODS[cfg.method.method](cfg, self.model)
        self.batch_gen = torch.Generator().manual_seed(cfg.seed + 1)
        T = len(self.stream)
        self.R = np.full((T, T), np.nan)
        self.chance = np.array([self.stream.chance(task) for task in self.stream.tasks])
        self.baseline = evaluate(self.model, self.stream, self.stream.tasks) if cfg.train.eval_all else None
        self.diags: list[dict] = []
        self.diverged_at: int | None = None
        self.tasks_run = 0
        self.stopped = False
        self.clock["data"] = time.perf_counter() - start

    def end_task(self, t: int, loss: float, stability: float | None, started: float) -> None:
        """After training task t: check finiteness, consolidate, evaluate, record, judge."""
        cfg, stream = self.cfg, self.stream
        finite = math.isfinite(loss) and bool(torch.isfinite(flat_params(self.model)).all())
        tac = time.perf_counter()
        info = self.method.consolidate(self.model, stream.tasks[t], stream) if finite else {}
        toc = time.perf_counter()
        seen = stream.tasks if cfg.train.eval_all else stream.tasks[: t + 1]
        self.R[t, : len(seen)] = evaluate(self.model, stream, seen)
        self.clock["fisher"] += toc - tac
        self.clock["eval"] += time.perf_counter() - toc
        self.diags.append({"task": t + 1, "train_loss": loss,
                           "penalty": self.method.penalty_value(self.model) if finite else float("nan"),
                           "fisher_mean": info.get("fisher_mean"), "fisher_max": info.get("fisher_max"),
                           "importance_max": info.get("importance_max"), "stability": stability,
                           "new_task_acc": float(self.R[t, t]), "seconds": time.perf_counter() - started})
        if not finite:
            self.diverged_at = t
        task_out, _ = detect.verdict(self.R[: t + 1], self.chance, cfg.blackout.margin, self.diverged_at)
        self.tasks_run = t + 1
        self.stopped = self.diverged_at is not None or (task_out is not None and cfg.blackout.stop_on_blackout)

    def result(self) -> Result:
        cfg = self.cfg
        R = self.R[: self.tasks_run]
        task_out, cause = detect.verdict(R, self.chance, cfg.blackout.margin, self.diverged_at)
        kept = detect.retained(R, cfg.blackout.retain_frac, self.chance, cfg.blackout.margin)
        self.clock["total"] = time.perf_counter() - self.start
        return Result(
            run_id=cfg.run_id, version=__version__, seed=cfg.seed, config=cfg.to_dict(), n_params=n_params(self.model),
            data={"source": self.data.source, "note": self.data.note, "n_train": int(len(self.data.y_train)),
                  "n_test": int(len(self.data.y_test)), "chance": self.chance.tolist()},
            acc=R, diagnostics=self.diags, metrics=metrics.summary(R, self.baseline),
            blackout={"task": task_out, "cause": cause, "retained": len(kept), "retained_tasks": kept},
            timings=dict(self.clock),
        )


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr)


def steps_per_task(cfg: TrainConfig, n: int) -> int:
    return math.ceil(cfg.epochs * n / cfg.batch_size) if cfg.epochs > 0 else cfg.iterations


def train_task(model: nn.Module, method: Method, stream: Stream, task: Task, cfg: TrainConfig, gen: torch.Generator) -> float:
    """Train on one task; return the mean task loss over the last steps (NaN if it diverged).

    A fresh optimizer per task, so Adam's moments do not carry one task's statistics into the next.
    """
    opt = make_optimizer(cfg, model)
    n = len(stream.split(task, "train").y)
    steps = steps_per_task(cfg, n)
    recent = []
    model.train()
    for step, rows in enumerate(batches(n, cfg.batch_size, steps, gen)):
        x, y = stream.batch(task, "train", rows)
        loss = F.cross_entropy(task.head_slice(model(x)), y)
        penalty = method.penalty(model, x, task)
        opt.zero_grad(set_to_none=True)
        (loss if penalty is None else loss + penalty).backward()
        method.after_backward(model, task)
        opt.step()
        method.after_step(model)
        value = loss.item()
        if not math.isfinite(value):
            return float("nan")  # further steps cannot come back from a NaN
        if step >= steps - loss_tail(steps):
            recent.append(value)
    return float(np.mean(recent))


def loss_tail(steps: int) -> int:
    """How many final steps the reported training loss averages: the loss the task ended at."""
    return max(1, min(50, steps // 10))


def batches(n: int, size: int, steps: int, gen: torch.Generator):
    """``steps`` index batches: consecutive slices of a fresh shuffle of 0..n-1 per epoch."""
    order, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos >= n:
            order, pos = torch.randperm(n, generator=gen), 0
        yield order[pos : pos + size]
        pos += size


@torch.no_grad()
def evaluate(model: nn.Module, stream: Stream, tasks: list[Task]) -> np.ndarray:
    """Test accuracy on each of ``tasks``, batched."""
    model.eval()
    out = []
    for task in tasks:
        x_all = stream.inputs("test")
        split = stream.split(task, "test")
        idx = torch.arange(len(split.y)) if split.idx is None else split.idx
        correct = 0
        for s in range(0, len(idx), EVAL_CHUNK):
            x = task.transform(x_all[idx[s : s + EVAL_CHUNK]])
            correct += (task.head_slice(model(x)).argmax(1) == split.y[s : s + EVAL_CHUNK]).sum().item()
        out.append(correct / max(1, len(idx)))
    model.train()
    return np.array(out)
