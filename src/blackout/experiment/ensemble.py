"""Batched ensembles: several runs of one MLP architecture trained as one stacked model.

Tiny networks spend most of a training step in per-operation overhead, not arithmetic; stacking
M runs' weights as (M, out, in) and using one ``baddbmm`` per layer does M runs' work for about
the overhead of one. Runs may differ in seed (weights, permutations, batch order, Fisher labels),
λ and learning rate. Everything but the training steps (consolidation, evaluation, verdicts) is
``train.Experiment``'s own code, per run, and ``baddbmm`` computes each slice with the same kernel
as ``F.linear``, so an ensemble reproduces ``run(config)`` for each member.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import RunConfig
from .methods.quadratic import Quadratic
from .models import ACTIVATION
from .result import Result
from .train import Experiment, batches, loss_tail, steps_per_task

BATCHABLE_METHODS = ("sgd", "l2", "ewc", "online-ewc")
MAX_MEMBERS = 8


def ensemble_key(cfg: RunConfig) -> tuple | None:
    """Runs with equal keys can share one batched model; None: this run trains alone.

    Needs plain SGD on an MLP, a quadratic (or no) penalty in its merged form, and a stream whose
    tasks have equal sizes for every seed (permuted or rotated), so every member steps in lockstep.
    """
    if (cfg.model.arch != "mlp" or cfg.train.optimizer != "sgd" or cfg.method.method not in BATCHABLE_METHODS
            or cfg.method.ewc_form != "merged" or cfg.data.stream == "split"):
        return None
    d = cfg.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("seed", "lr")}
    d["method"] = {k: v for k, v in d["method"].items() if k not in ("lam",)}
    return tuple(sorted((s, tuple(sorted((k, str(v)) for k, v in sec.items()))) for s, sec in d.items()))


def run_ensemble(configs: list[RunConfig], data_dir: str | None = None) -> list[Result]:
    """Train ``configs`` (equal ``ensemble_key``) together; one Result per config, in order."""
    keys = {ensemble_key(c) for c in configs}
    if None in keys or len(keys) != 1:
        raise ValueError("run_ensemble needs configs with one common, non-None ensemble_key")
    exps = [Experiment(c, data_dir) for c in configs]
    for t in range(len(exps[0].stream)):
        active = [e for e in exps if not e.stopped]
        if not active:
            break
        stability = [e.method.stability() for e in active]
        tic = time.perf_counter()
        losses = train_task_stacked(active, t)
        for e, loss, s in zip(active, losses, stability):
            e.clock["train"] += (time.perf_counter() - tic) / len(active)
            e.end_task(t, loss, s, tic)
    return [e.result() for e in exps]


def train_task_stacked(exps: list[Experiment], t: int) -> list[float]:
    """Task t for every experiment at once; returns each one's training loss (NaN if it diverged)."""
    cfg = exps[0].cfg.train
    M = len(exps)
    linears = [[m for m in e.model if isinstance(m, nn.Linear)] for e in exps]
    act = ACTIVATION[exps[0].cfg.model.activation]()
    W = [torch.stack([ls[i].weight.detach() for ls in linears]).requires_grad_() for i in range(len(linears[0]))]
    b = [torch.stack([ls[i].bias.detach() for ls in linears]).requires_grad_() for i in range(len(linears[0]))]
    params = [p for pair in zip(W, b) for p in pair]  # the order of model.parameters()
    penalised = [isinstance(e.method, Quadratic) and e.method.tasks_seen > 0 and e.method.lam > 0 for e in exps]
    anchor, importance = _stacked_penalty(exps, penalised)
    half_lam = torch.tensor([0.5 * e.method.lam if on else 0.0 for e, on in zip(exps, penalised)])
    neg_lr = torch.tensor([-e.cfg.train.lr for e in exps])
    live = torch.ones(M, dtype=torch.bool)
    tasks = [e.stream.tasks[t] for e in exps]
    n = len(exps[0].stream.split(tasks[0], "train").y)
    steps = steps_per_task(cfg, n)
    draws = [batches(n, cfg.batch_size, steps, e.batch_gen) for e in exps]
    recent: list[np.ndarray] = []
    for step in range(steps):
        h, y = _stacked_batch(exps, tasks, [next(d) for d in draws])  # (M, B, in), (M, B)
        for i, (w, bias) in enumerate(zip(W, b)):
            h = torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2))  # each slice: F.linear
            if i + 1 < len(W):
                h = act(h)
        per_run = F.cross_entropy(h.flatten(0, 1), y.flatten(), reduction="none").view(M, -1).mean(1)  # (M,)
        total = per_run.sum()
        if anchor:
            quad = sum(((p - mu).pow(2) * a).flatten(1).sum(1) for p, a, mu in zip(params, importance, anchor))
            total = total + (half_lam * quad).sum()
        grads = torch.autograd.grad(total, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.addcmul_(g, neg_lr.view(M, *[1] * (p.dim() - 1)))  # bit-equal to SGD's add_(g, alpha=-lr)
        values = per_run.detach()
        live &= torch.isfinite(values)  # its weights are NaN from here on, as where run() stops
        if step >= steps - loss_tail(steps):
            recent.append(values.numpy().copy())
    with torch.no_grad():
        for m, ls in enumerate(linears):
            for i, layer in enumerate(ls):
                layer.weight.copy_(W[i][m])
                layer.bias.copy_(b[i][m])
    tail = np.array(recent)
    return [float("nan") if not live[m] else float(tail[:, m].mean()) for m in range(M)]


def _stacked_batch(exps: list[Experiment], tasks, rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every member's training batch, flattened: (M, B, inputs) and (M, B).

    Permuted tasks share one row gather for all members, then each member's ``Task.transform``, so
    the inputs are identical to a single run's; other streams go through each member's own stream.
    """
    split = exps[0].stream.split(tasks[0], "train")
    if all(task.angle == 0 and task.classes is None for task in tasks):
        flat = exps[0].stream.inputs("train").flatten(1)  # (N, C*H*W), a view
        src = torch.cat(rows) if split.idx is None else split.idx[torch.cat(rows)]
        x = flat.index_select(0, src).view(len(rows), -1, flat.shape[1])  # (M, B, P)
        for m, task in enumerate(tasks):
            if task.perm is not None:
                x[m] = task.transform(x[m])  # the same index_select as a single run's batch
        return x, torch.stack([split.y.index_select(0, r) for r in rows])
    xs, ys = zip(*(e.stream.batch(task, "train", r) for e, task, r in zip(exps, tasks, rows)))
    return torch.stack(xs).flatten(2), torch.stack(ys)


def _stacked_penalty(exps: list[Experiment], penalised: list[bool]):
    """Stack each run's anchor and importance; zeros for runs without a penalty yet."""
    if not any(penalised):
        return [], []
    anchor, importance = [], []
    for i, p in enumerate(exps[0].model.parameters()):
        anchor.append(torch.stack([e.method.mu[i] if on else torch.zeros_like(p) for e, on in zip(exps, penalised)]))
        importance.append(torch.stack([e.method.A[i] if on else torch.zeros_like(p) for e, on in zip(exps, penalised)]))
    return anchor, importance
