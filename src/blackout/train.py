"""The sequential experiment: ``run(config) -> Result``.

One loop over the stream: train task t, check finiteness, consolidate, evaluate the tasks so far,
fill row t of the accuracy matrix, check for blackout. A NaN is a result, never an exception.
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
    clock = {"data": 0.0, "train": 0.0, "fisher": 0.0, "eval": 0.0}
    start = time.perf_counter()
    data = load_dataset(cfg.data.dataset, data_dir)
    stream = Stream(cfg.data, data, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, tuple(data.x_train.shape[1:]), stream.n_out)
    method = METHODS[cfg.method.method](cfg, model)
    batch_gen = torch.Generator().manual_seed(cfg.seed + 1)
    clock["data"] = time.perf_counter() - start

    T = len(stream)
    R = np.full((T, T), np.nan)
    chance = np.array([stream.chance(task) for task in stream.tasks])
    baseline = evaluate(model, stream, stream.tasks) if cfg.train.eval_all else None
    diags: list[dict] = []
    diverged_at = None
    for t, task in enumerate(stream.tasks):
        stability = method.stability()  # the curvature in force while training this task
        tic = time.perf_counter()
        loss = train_task(model, method, stream, task, cfg.train, batch_gen)
        finite = math.isfinite(loss) and bool(torch.isfinite(flat_params(model)).all())
        tac = time.perf_counter()
        info = method.consolidate(model, task, stream) if finite else {}
        toc = time.perf_counter()
        seen = stream.tasks if cfg.train.eval_all else stream.tasks[: t + 1]
        R[t, : len(seen)] = evaluate(model, stream, seen)
        clock["train"] += tac - tic
        clock["fisher"] += toc - tac
        clock["eval"] += time.perf_counter() - toc
        diags.append({"task": t + 1, "train_loss": loss, "penalty": method.penalty_value(model) if finite else float("nan"),
                      "fisher_mean": info.get("fisher_mean"), "fisher_max": info.get("fisher_max"),
                      "importance_max": info.get("importance_max"), "stability": stability,
                      "new_task_acc": float(R[t, t]), "seconds": time.perf_counter() - tic})
        if on_task:
            on_task(t, R[t])
        if not finite:
            diverged_at = t
        task_out, _ = detect.verdict(R[: t + 1], chance, cfg.blackout.margin, diverged_at)
        if diverged_at is not None or (task_out is not None and cfg.blackout.stop_on_blackout):
            break
    R = R[: t + 1]
    task_out, cause = detect.verdict(R, chance, cfg.blackout.margin, diverged_at)
    kept = detect.retained(R, cfg.blackout.retain_frac, chance, cfg.blackout.margin)
    clock["total"] = time.perf_counter() - start
    return Result(
        run_id=cfg.run_id, version=__version__, seed=cfg.seed, config=cfg.to_dict(), n_params=n_params(model),
        data={"source": data.source, "note": data.note, "n_train": int(len(data.y_train)),
              "n_test": int(len(data.y_test)), "chance": chance.tolist()},
        acc=R, diagnostics=diags, metrics=metrics.summary(R, baseline),
        blackout={"task": task_out, "cause": cause, "retained": len(kept), "retained_tasks": kept},
        timings=clock,
    )


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr)


def train_task(model: nn.Module, method: Method, stream: Stream, task: Task, cfg: TrainConfig, gen: torch.Generator) -> float:
    """Train on one task; return the mean task loss over the last steps (NaN if it diverged).

    A fresh optimizer per task, so Adam's moments do not carry one task's statistics into the next.
    """
    opt = make_optimizer(cfg, model)
    n = len(stream.split(task, "train").y)
    steps = math.ceil(cfg.epochs * n / cfg.batch_size) if cfg.epochs > 0 else cfg.iterations
    tail = max(1, min(50, steps // 10))  # report the loss the task ended at, not its first steps
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
        if step >= steps - tail:
            recent.append(value)
    return float(np.mean(recent))


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
