"""The sequential experiment: ``run(config) -> Result``, and ``run_group`` for runs trained as one stack.

One loop over the tasks: train task t, judge finiteness, evaluate the tasks so far, consolidate,
record diagnostics, fill row t of the accuracy matrix and judge blackout. A NaN is a result, never
an exception. Runs that share an architecture (``group_key``) train as one stacked model: every
member's numbers are those of its own ``run``, whatever group it is in, because each member's
slice of every stacked product uses the same kernel, and every random draw comes from the
member's own generators. A single run is a group of one, through the same code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch

from .. import __version__, numerics
from ..config import RunConfig
from . import forecast, gating, metrics, plasticity, sharpness, stability, verdict
from .checkpoint import Checkpoint
from .data.sources import identified, load_dataset, prepared
from .data.streams import Streams
from .methods import registry
from .models import StackedMLP, build_net, n_params
from .result import Result, Verdict, environment
from .step import SGD, Adam, make_optimizer, update

EVAL_CHUNK = 4096
ACTIVE_PROBE = 4096  # training images of a task checked for inputs that reach an unstable weight


def run(cfg: RunConfig, data_dir: str | None = None, on_task: Callable[[int, dict], None] | None = None) -> Result:
    """Train one network through ``cfg.data.tasks`` tasks; ``on_task(t, info)`` reports each task
    (``info``: "row" of the accuracy matrix, "diagnostics", "next_stability", "stability_applies", and
    "forecasts": whether the run forecasts its blackout task, ``forecast.FORECAST_METHODS``)."""
    return run_group([cfg], data_dir, on_task=None if on_task is None else lambda m, t, info: on_task(t, info))[0]


def run_group(
    configs: list[RunConfig],
    data_dir: str | None = None,
    on_task: Callable[[int, int, dict], None] | None = None,
    checkpoints: str | Path | None = None,
) -> list[Result]:
    """Train ``configs`` (one ``group_key``) as one stacked model; one Result per config, in order.

    ``on_task(member, t, info)`` as for ``run``. With a ``checkpoints`` folder the group is saved there
    between tasks and resumed from its last save (``checkpoint.py``)."""
    with threads(configs[0].train.threads):
        return _run_group(configs, data_dir, on_task, checkpoints)


@contextmanager
def threads(n: int):
    """The run's own thread count while it trains (its numbers depend on it), the caller's afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_group(configs, data_dir, on_task, checkpoints) -> list[Result]:
    saved = Checkpoint(checkpoints, configs) if checkpoints is not None else None
    ex = Experiment.resume(saved, data_dir) or Experiment(configs, data_dir)
    for t in range(ex.next_task, ex.tasks):
        in_force = ex.method.stability()  # the penalty's curvature while this task trains
        tic = time.perf_counter()
        loss, finite_loss = ex.train_task(t)
        toc = time.perf_counter()
        finite = ex.finite(finite_loss)
        accs = ex.evaluate(t)  # row t of every member's accuracy matrix
        ex.record(t, loss, finite, accs, in_force, tic, toc)  # consolidate, diagnose, judge
        if on_task:
            ex.report(t, on_task)
        ex.drop_stopped()
        if not ex.active:
            break
        ex.next_task = t + 1
        if saved:
            saved.save(ex)
    if saved:
        saved.remove()
    return ex.results()


def alone_reason(cfg: RunConfig) -> str | None:
    """Why this run cannot share a stacked model with others, or None if it can."""
    if cfg.model.arch != "mlp":
        return f"arch {cfg.model.arch} trains alone"
    if not registry()[cfg.method.method].batchable:
        return f"method {cfg.method.method} does not batch"
    if cfg.data.stream == "split":
        return "split streams (task sizes differ by seed)"
    return None


def group_key(cfg: RunConfig) -> tuple | None:
    """Runs with equal keys can train as one stacked model; None: this run trains alone (``alone_reason``).

    Members may differ in seed, learning rate and the method's numeric settings (lambda, gamma,
    ...); everything that shapes the network, the data or the schedule must be equal.
    """
    if alone_reason(cfg) is not None:
        return None
    d = cfg.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("seed", "lr")}
    d["method"] = {k: v for k, v in d["method"].items() if not isinstance(v, float)}
    return tuple(sorted((s, tuple(sorted((k, str(v)) for k, v in sec.items()))) for s, sec in d.items()))


_ON_DEVICE: dict[tuple, object] = {}


def on_device(data, device: torch.device):
    """The dataset's tensors on ``device``, copied once per process and device."""
    if device.type == "cpu":
        return data
    key = (id(data), str(device))
    if key not in _ON_DEVICE:
        import dataclasses

        _ON_DEVICE[key] = dataclasses.replace(
            data, **{k: getattr(data, k).to(device) for k in ("x_train", "y_train", "x_test", "y_test")}
        )
    return _ON_DEVICE[key]


def dataset(configs: list[RunConfig], data_dir: str | None, device: torch.device):
    """The group's dataset, prepared (padding, standardising) and placed on ``device`` once per process."""
    cfg = configs[0]
    raw = load_dataset(cfg.data.dataset, data_dir)
    for c in configs:
        identified(c, raw)  # a config planned on other data is refused
    return on_device(prepared(raw, cfg.data.pad, cfg.data.normalize), device)


def steps_per_task(cfg, n: int) -> int:
    return math.ceil(cfg.epochs * n / cfg.batch_size) if cfg.epochs > 0 else cfg.iterations


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


@dataclass
class Member:
    """One run's record while its group trains."""

    cfg: RunConfig
    R: np.ndarray
    chance: np.ndarray
    baseline: np.ndarray | None
    diags: list[dict] = field(default_factory=list)
    diverged_at: int | None = None
    tasks_run: int = 0
    stopped: bool = False
    clock: dict = field(default_factory=lambda: {"data": 0.0, "train": 0.0, "fisher": 0.0, "eval": 0.0})


class Experiment:
    """The data, stacked network, method and per-member records of a group of runs."""

    def __init__(self, configs: list[RunConfig], data_dir: str | None = None):
        start = time.perf_counter()
        if len(configs) > 1 and (group_key(configs[0]) is None or len({group_key(c) for c in configs}) != 1):
            raise ValueError("run_group needs configs with one common, non-None group_key")
        self.configs, self.start = list(configs), start
        cfg = configs[0]
        seeds = [c.seed for c in configs]
        self.device = torch.device(cfg.train.device)
        self.data = dataset(configs, data_dir, self.device)
        self.next_task = 0
        self.resumed: list[int] = []  # the tasks (1-based) a checkpoint was resumed at
        self.streams = Streams(cfg.data, self.data, seeds)
        self.streams.check(max(c.blackout.margin for c in configs))
        self.tasks = len(self.streams)
        self.net = build_net(cfg.model, tuple(self.data.x_train.shape[1:]), self.streams.n_out, seeds).to(self.device)
        self.n_params = n_params(self.net)
        self.method = registry()[cfg.method.method](configs, self.net)
        if cfg.model.gating:
            self.net.gating = gating.Gates(list(cfg.model.hidden), self.tasks, cfg.model.gating, seeds, self.device)
        self.batch_gens = [torch.Generator().manual_seed(s + 1) for s in seeds]
        self.kept_opt: Adam | SGD | None = None  # keep_optimizer: the run's one optimizer
        self.applies = type(self.method).gradient_penalty and cfg.train.optimizer == "sgd"
        self.forecasts = self.applies and cfg.method.method in forecast.FORECAST_METHODS
        T = self.tasks
        self.members = [
            Member(c, np.full((T, T), np.nan), np.array(self.streams.chance(m)), None) for m, c in enumerate(configs)
        ]
        self.active = list(range(len(configs)))  # members still in the stack, in stack order
        if cfg.train.eval_all:
            base = self.evaluate_tasks(range(T))
            for i, m in enumerate(self.active):
                self.members[m].baseline = base[i]
        for member in self.members:
            member.clock["data"] = (time.perf_counter() - start) / len(configs)

    @classmethod
    def resume(cls, saved: Checkpoint | None, data_dir: str | None) -> Experiment | None:
        """The experiment as ``saved`` left it, with its data loaded again; None without a checkpoint."""
        loaded = saved.load() if saved else None
        if loaded is None:
            return None
        ex, elapsed = loaded
        ex.data = dataset(ex.configs, data_dir, ex.device)
        ex.streams.attach(ex.data)
        ex.start = time.perf_counter() - elapsed
        ex.resumed.append(ex.next_task + 1)
        return ex

    def __getstate__(self) -> dict:
        return {**self.__dict__, "data": None}  # loaded again on resume

    # -- training ------------------------------------------------------------------------------
    def train_task(self, t: int) -> tuple[list[float], torch.Tensor]:
        """Task t for every member still running; returns each member's loss over the task's last
        steps (``loss_tail``) and whether every step's loss was finite.

        A member whose loss turns non-finite keeps stepping to the end of the task, alone or in a
        group alike, so its numbers never depend on its group; no step waits on the host.
        """
        tc = self.configs[0].train
        net, method, streams = self.net, self.method, self.streams
        n = streams.n_rows(t)
        steps = steps_per_task(tc, n)
        task = streams.task(t)
        with gating.under(net, t):  # a method's memory samples: each under its own task's gate (gating.py)
            self.active_at_start, self.reach_at_start = stability.unstable_active(
                method, net, self._probe(t, "train", ACTIVE_PROBE)
            )
            draws = [batches(n, tc.batch_size, steps, g) for g in self.batch_gens]
            streams.begin(t, steps * tc.batch_size)
            method.begin_task(net, task, streams)
            opt = self.optimizer()
            losses = []
            for _ in range(steps):
                x, y = streams.batch(t, [next(d) for d in draws])
                x, y = method.batch(net, x, y, task)
                losses.append(update(net, method, opt, x, y, task))
            streams.end()
        # one member at a time through the same kernel, so a member's loss does not depend on its group
        tail = [
            math.fsum(float(step[m].mean()) for step in losses[-loss_tail(steps) :]) / loss_tail(steps)
            for m in range(len(self.active))
        ]
        return tail, torch.isfinite(torch.cat(losses, 1)).all(1)

    def optimizer(self):
        """A fresh optimizer for the task, or with ``keep_optimizer`` the one the run began with."""
        tc = self.configs[0].train
        if self.kept_opt is not None:
            return self.kept_opt
        opt = make_optimizer(tc.optimizer, self.net.params(), self.method.lr)
        if tc.keep_optimizer:
            self.kept_opt = opt
        return opt

    def finite(self, finite_loss: torch.Tensor) -> list[bool]:
        weights = torch.stack([p.detach().flatten(1).isfinite().all(1) for p in self.net.params()]).all(0)
        return (finite_loss & weights).cpu().tolist()

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate_tasks(self, tasks) -> np.ndarray:
        """Test accuracy of every active member on each of ``tasks``: (M, len(tasks))."""
        out = []
        for j in tasks:
            n = self.streams.n_rows(j, "test")
            head = self.streams.task(j).scored_range
            correct = torch.zeros(len(self.active), device=self.device)
            # a permuted task permutes an MLP's first-layer weights instead of every test image
            mlp = self.net if isinstance(self.net, StackedMLP) and self.streams.task(j).perm is not None else None
            by_weights = mlp is not None
            members = [
                mlp.member(m, st.tasks[j].perm) if mlp is not None else self.net.member(m)
                for m, st in enumerate(self.streams.members)
            ]
            with gating.under(self.net, j):  # each task under its own gate; the one in effect is kept
                for s in range(0, n, EVAL_CHUNK):
                    rows = slice(s, min(n, s + EVAL_CHUNK))
                    for m, st in enumerate(self.streams.members):  # one member at a time: no stacked test set
                        x, y = st.batch(st.tasks[j], "test", rows, transform=not by_weights)
                        logits = members[m](x[None])[0]
                        if head is not None:
                            logits = logits[..., head[0] : head[1]]
                        correct[m] += (logits.argmax(-1) == y).sum()
            out.append((correct / max(1, n)).cpu().numpy())
        return np.stack(out, 1) if out else np.zeros((len(self.active), 0))

    def evaluate(self, t: int) -> np.ndarray:
        tic = time.perf_counter()
        all_tasks = self.configs[0].train.eval_all
        accs = self.evaluate_tasks(range(self.tasks) if all_tasks else range(t + 1))
        for m in self.active:
            self.members[m].clock["eval"] += (time.perf_counter() - tic) / len(self.active)
        return accs

    # -- after a task ----------------------------------------------------------------------------
    def record(
        self, t: int, tail: list[float], finite: list[bool], accs: np.ndarray, in_force: list, tic: float, toc: float
    ) -> None:
        """Consolidate the members that stayed finite, record every member's diagnostics and verdict."""
        before = list(self.active)
        with gating.under(self.net, t):  # task t's gate, whichever task evaluation gated last
            penalty = self.method.penalty_value(self.net)
            plastic = plasticity.measure(self.net, self._probe(t, "test", plasticity.PROBE))
            tsh = time.perf_counter()
            x, y = self._probe(t, "train", sharpness.PROBE, with_labels=True)
            sharp = sharpness.measure(
                self.net,
                self.method,
                x,
                y,
                self.streams.task(t),
                self.method.lr,
                self.configs[0].train.sharpness,
                [m.cfg.seed * 31 + t for m in map(self.members.__getitem__, before)],
            )
            sharp_time = (time.perf_counter() - tsh) / len(before)
            unstable, drift = stability.unstable(self.method, self.net)
            # a non-finite network cannot be consolidated: it leaves the stack now
            self._leave([m for m, ok in zip(before, finite) if not ok])
            keep = [i for i, ok in enumerate(finite) if ok]
            tac = time.perf_counter()
            info = self.method.consolidate(self.net, self.streams.task(t), self.streams) if keep else []
            held = self.method.memory() if keep else []
            fisher_time = (time.perf_counter() - tac) / max(1, len(keep))
        upcoming = self.method.stability() if keep and self.forecasts else []
        for i, m in enumerate(before):
            mem = self.members[m]
            mem.R[t, : accs.shape[1]] = accs[i]
            mem.clock["train"] += (toc - tic) / len(before)
            mem.clock["fisher"] += fisher_time if finite[i] else 0.0
            d = {
                "task": t + 1,
                "train_loss": tail[i],
                "penalty": penalty[i],
                "stability": in_force[i],
                "unstable_weights": unstable[i],
                "unstable_drift": drift[i],
                "unstable_active": self.active_at_start[i],
                "unstable_reach": self.reach_at_start[i],
                "new_task_acc": float(accs[i, t]),
                **plastic[i],
                **sharp[i],
            }
            mem.clock["sharpness"] = mem.clock.get("sharpness", 0.0) + sharp_time
            if finite[i]:
                d.update(info[keep.index(i)], **held[keep.index(i)])
            else:
                mem.diverged_at = t
            if self.forecasts and finite[i] and t >= 1:
                d.update(forecast.recorded(mem.diags + [d], upcoming[keep.index(i)], mem.cfg.data.tasks))
            d["seconds"] = (time.perf_counter() - tic) / len(before)
            mem.diags.append(d)
            mem.tasks_run = t + 1
            task, _, _ = verdict.verdict(mem.R[: t + 1], mem.chance, mem.cfg.blackout.margin, mem.diverged_at)
            mem.stopped = mem.diverged_at is not None or (task is not None and mem.cfg.blackout.stop_on_blackout)

    def report(self, t: int, on_task: Callable[[int, int, dict], None]) -> None:
        """Each member's row and diagnostics, and the stability number the next task will train with."""
        applies, upcoming = self.applies, self.method.stability()
        for i, m in enumerate(self.active):
            mem = self.members[m]
            on_task(
                m,
                t,
                {
                    "row": mem.R[t],
                    "diagnostics": mem.diags[-1],
                    "next_stability": upcoming[i],
                    "stability_applies": applies,
                    "forecasts": self.forecasts,
                },
            )

    def _probe(self, t: int, part: str, n: int, with_labels: bool = False):
        """The first ``n`` samples of task t's ``part``, through every member's own transform."""
        n = min(n, self.streams.n_rows(t, part))
        rows = torch.arange(n)
        xs, ys = zip(*(st.batch(st.tasks[t], part, rows) for st in self.streams.members))
        return (torch.stack(xs), torch.stack(ys)) if with_labels else torch.stack(xs)

    def drop_stopped(self) -> None:
        self._leave([m for m in self.active if self.members[m].stopped])

    def _leave(self, members: list[int]) -> None:
        if not members:
            return
        keep = [i for i, m in enumerate(self.active) if m not in members]
        self.active = [self.active[i] for i in keep]
        if not keep:
            return
        cast(StackedMLP, self.net).select(keep)  # a CNN trains alone: only a stacked MLP sheds members (and gates)
        self.method.select(keep)
        self.streams.select(keep)
        if self.kept_opt is not None:
            self.kept_opt.select(keep)
        self.batch_gens = [self.batch_gens[i] for i in keep]

    # -- results -------------------------------------------------------------------------------
    def results(self) -> list[Result]:
        out = []
        env = environment(threads=torch.get_num_threads(), device=str(self.device), group_size=len(self.configs))
        if self.resumed:
            env["resumed_at_task"] = self.resumed
        applies = self.applies
        for mem in self.members:
            cfg = mem.cfg
            R = mem.R[: mem.tasks_run]
            task, cause, learned = verdict.verdict(R, mem.chance, cfg.blackout.margin, mem.diverged_at)
            kept = verdict.retained(R, cfg.blackout.retain_frac, mem.chance, cfg.blackout.margin)
            mem.clock["total"] = time.perf_counter() - self.start
            out.append(
                Result(
                    run_id=cfg.run_id,
                    version=__version__,
                    numerics=numerics.NUMERICS_VERSION,
                    seed=cfg.seed,
                    config=cfg.to_dict(),
                    n_params=self.n_params,
                    data={
                        "source": self.data.source,
                        "note": self.data.note,
                        "n_train": int(len(self.data.y_train)),
                        "n_test": int(len(self.data.y_test)),
                        "chance": mem.chance.tolist(),
                    },
                    acc=R,
                    diagnostics=mem.diags,
                    metrics=metrics.summary(R, mem.baseline),
                    verdict=Verdict(task, cause, learned, kept, applies),
                    timings=dict(mem.clock),
                    environment=env,
                )
            )
        return out
