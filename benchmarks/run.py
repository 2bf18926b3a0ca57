"""blackout's benchmarks: each line is a value or ratio measured in this one run, against its target.

    python benchmarks/run.py                    # every benchmark except methods-blackout
    python benchmarks/run.py --quick            # small sizes, every line still printed (a few minutes)
    python benchmarks/run.py --only step p1     # some of them
    python benchmarks/run.py --all              # also the 144-run methods-blackout sweep (about 25 minutes)

In-process timings are medians over rounds that run every variant once, in rotated order, and
whole processes alternate A, B, A, B, ...: a load that drifts during the run then hits every
variant alike. Nothing here asserts a time; a line says PASS or SHORT.
Data: the MNIST test files (../shared/data/mnist, split 8,000/2,000 by blackout) and the full
Fashion-MNIST (/usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MNIST = ROOT.parent / "shared" / "data" / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")
PY = sys.executable
BLACKOUT = [str(Path(PY).parent / "blackout")] if (Path(PY).parent / "blackout").exists() else [PY, "-m", "blackout"]
WIDTHS = (25, 50, 100, 200, 400)
BATCHES = (100, 128)
HEAVY = ("torch", "matplotlib", "scipy", "sqlite3", "ray", "numpy", "pandas", "sklearn")


@dataclass
class Ctx:
    """What the benchmarks share: the options, a scratch folder and the GEMM floors measured so far."""

    quick: bool
    repeats: int | None
    tmp: Path
    against: str | None = None  # another source tree (its src/) to time the same commands with
    floors: dict[tuple[int, int], float] = field(default_factory=dict)  # (width, batch) -> seconds per step

    def reps(self, full: int, quick: int) -> int:
        return self.repeats or (quick if self.quick else full)


# -- shared helpers --------------------------------------------------------------------------------

def line(name: str, value, unit: str, target: str, ok: bool, extra: str = "") -> None:
    shown = f"{value:>9.2f}" if isinstance(value, (int, float)) else f"{value:>9}"
    print(f"{name:<34} {shown} {unit:<6} target {target:<16} {'PASS' if ok else 'SHORT':<5}  {extra}", flush=True)


def note(text: str) -> None:
    print(f"    {text}", flush=True)


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median of each variant's seconds per call; a call returns the seconds it measured.

    One warm-up call each, then ``rounds`` rounds that call every variant once, the order rotated
    each round, so that a change of load during the benchmark falls on all variants alike.
    """
    names = list(variants)
    for k in names:
        variants[k]()
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[: r % len(names)]:
            times[k].append(variants[k]())
    return {k: statistics.median(v) for k, v in times.items()}


@dataclass
class Proc:
    wall: float  # seconds, measured by this process around the child's whole life
    cpu: float  # CPU seconds of the child and every process it waited for
    out: str


def run_proc(cmd: list[str], env: dict | None = None) -> Proc:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        shown = " ".join(c if len(c) < 60 else c[:57] + "..." for c in cmd)
        raise RuntimeError(f"{shown} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return Proc(wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, p.stdout)


def alternate(cmds: dict[str, Callable[[int], list[str]]], n: int, env: dict | None = None) -> dict[str, list[Proc]]:
    """Each command ``n`` times as a whole process, alternating (A, B, A, B, ...); ``cmds[k](i)`` is repeat i's argv."""
    out: dict[str, list[Proc]] = {k: [] for k in cmds}
    for i in range(n):
        for k in (list(cmds) if i % 2 == 0 else list(cmds)[::-1]):
            out[k].append(run_proc(cmds[k](i), env))
    return out


def med(xs) -> float:
    return statistics.median(list(xs))


def cfg(**kw):
    from blackout.config import RunConfig

    return RunConfig.from_flat(kw)


# -- the training step, its matrix products and a plain reference ---------------------------------

def products(width: int, batch: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The five matrix products of one step of 784-W-10 at this batch, with the step's own layouts (M = 1)."""
    g = torch.Generator().manual_seed(0)
    x, h = torch.rand(1, batch, 784, generator=g), torch.rand(1, batch, width, generator=g)
    w1, w2 = torch.randn(1, width, 784, generator=g), torch.randn(1, 10, width, generator=g)
    dz2, dz1 = torch.randn(1, batch, 10, generator=g), torch.randn(1, batch, width, generator=g)
    return {"x W1^T": (x, w1.transpose(1, 2)), "h W2^T": (h, w2.transpose(1, 2)),
            "dz2^T h": (dz2.transpose(1, 2), h), "dz2 W2": (dz2, w2), "dz1^T x": (dz1.transpose(1, 2), x)}


def product_flops(width: int, batch: int) -> int:
    """FLOPs of those five products: 2B(784W + 10W) forward, 2B(10W + 10W + 784W) backward."""
    return 2 * batch * width * (2 * 784 + 3 * 10)


def train_flops(n_params: int, batch: int) -> int:
    """The usual count of a training step: 6 x parameters x batch (it includes the first layer's input
    gradient, which the step never forms, so it is about 1.5x the products above for 784-W-10)."""
    return 6 * n_params * batch


def floor_call(width: int, batch: int, n: int) -> Callable[[], float]:
    """Seconds per step of the five products alone: each ``bmm`` n times in a tight loop into a fixed output, summed."""
    prods = [(a, b, torch.empty(1, a.shape[1], b.shape[2])) for a, b in products(width, batch).values()]

    def call() -> float:
        total = 0.0
        for a, b, out in prods:
            t = time.perf_counter()
            for _ in range(n):
                torch.bmm(a, b, out=out)
            total += time.perf_counter() - t
        return total / n

    return call


def ordered_call(width: int, batch: int, n: int) -> Callable[[], float]:
    """Seconds per step of the same five products once each, in the step's order and with its own ops
    (``baddbmm`` with the bias, ``baddbmm_`` into the weights), on a new batch each step: what the
    products cost when, as in a step, no operand stays in cache from a repeat of the same product."""
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(64, 1, batch, 784, generator=g)
    w1, w2 = torch.randn(1, width, 784, generator=g) * 0.03, torch.randn(1, 10, width, generator=g) * 0.1
    b1, b2, dz2 = torch.zeros(1, 1, width), torch.zeros(1, 1, 10), torch.randn(1, batch, 10, generator=g) * 1e-6

    def call() -> float:
        t = time.perf_counter()
        for i in range(n):
            x = xs[i % 64]
            h = torch.baddbmm(b1, x, w1.transpose(1, 2))
            torch.baddbmm(b2, h, w2.transpose(1, 2))
            dz1 = torch.bmm(dz2, w2)
            w2.baddbmm_(dz2.transpose(1, 2), h, alpha=-1)
            w1.baddbmm_(dz1.transpose(1, 2), x, alpha=-1)
        return (time.perf_counter() - t) / n

    return call


def floor_of(ctx: Ctx, width: int, batch: int) -> float:
    """The GEMM floor of one step at (width, batch): from ``step`` if it ran, else measured now."""
    if (width, batch) not in ctx.floors:
        ctx.floors[width, batch] = interleaved({"floor": floor_call(width, batch, 50)}, ctx.reps(7, 3))["floor"]
    return ctx.floors[width, batch]


class Rig:
    """One run's training step outside its loop, through ``train_task``'s own calls: an ``Experiment``
    on the MNIST split, ``consolidated`` tasks consolidated, the next task begun (``Streams.begin``),
    batches from ``Streams.batch`` and ``method.batch``, ``update()`` with a fresh optimizer."""

    def __init__(self, c, consolidated: int = 0):
        from blackout.experiment.step import make_optimizer
        from blackout.experiment.train import Experiment, batches, steps_per_task

        ex = Experiment([c], str(MNIST))
        self.net, self.method, self.streams, self.cfg = ex.net, ex.method, ex.streams, c
        for t in range(consolidated):
            self.method.consolidate(self.net, self.streams.task(t), self.streams)
        self.t = consolidated
        n = self.streams.n_rows(self.t)
        self.draws = batches(n, c.train.batch_size, 1 << 40, torch.Generator().manual_seed(c.seed + 1))
        self.streams.begin(self.t, steps_per_task(c.train, n) * c.train.batch_size)
        self.task = self.streams.task(self.t)
        self.method.begin_task(self.net, self.task, self.streams)
        self.opt = make_optimizer(c.train.optimizer, self.net.params(), self.method.lr)
        self.data_seconds = self.data_steps = 0

    def draw(self):
        x, y = self.streams.batch(self.t, [next(self.draws)])
        return self.method.batch(self.net, x, y, self.task)

    def step(self, x, y) -> None:
        from blackout.experiment.step import update

        update(self.net, self.method, self.opt, x, y, self.task)

    def call(self, n: int) -> Callable[[], float]:
        """Seconds per step in ``update()`` over n steps; drawing each batch is timed apart (``data_per_step``)."""
        def go() -> float:
            total = 0.0
            for _ in range(n):
                t0 = time.perf_counter()
                x, y = self.draw()
                t1 = time.perf_counter()
                self.step(x, y)
                total += time.perf_counter() - t1
                self.data_seconds += t1 - t0
            self.data_steps += n
            return total / n

        return go

    @property
    def data_per_step(self) -> float:
        return self.data_seconds / max(1, self.data_steps)

    def finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.net.params())


def plain_call(rig: Rig, width: int, n: int) -> Callable[[], float]:
    """The same batches (same data path, same batch order) through nn.Sequential + autograd + torch.optim.SGD."""
    import torch.nn.functional as F
    from torch import nn

    from blackout.experiment.train import batches

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))
    opt = torch.optim.SGD(model.parameters(), lr=rig.cfg.train.lr)
    draws = batches(rig.streams.n_rows(rig.t), rig.cfg.train.batch_size, 1 << 40,
                    torch.Generator().manual_seed(rig.cfg.seed + 1))

    def go() -> float:
        total = 0.0
        for _ in range(n):
            x, y = rig.streams.batch(rig.t, [next(draws)])
            xb, yb = x[0].flatten(1), y[0]
            t = time.perf_counter()
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += time.perf_counter() - t
        return total / n

    return go


STEP_LAM = 1.0  # with lr 0.1 on one consolidated task: stability about 0.03, far below 2


def bench_step(ctx: Ctx) -> None:
    rounds, n = ctx.reps(15, 5), (20 if ctx.quick else 50)
    print(f"step: one training step of 784-W-10, one thread, median of {rounds} interleaved rounds of {n} steps "
          f"(us per step; floor = the step's five matrix products alone, each in a tight loop; ordered = the same once each in the step's order; data = drawing the batch, not in the step)")
    print(f"    {'W':>4} {'batch':>5} {'floor':>7} {'GFLOP/s':>8} {'ordered':>8} {'bare':>7} {'ewc':>7} {'autograd':>9} "
          f"{'data':>6}")
    rows = []
    for width in WIDTHS:
        for batch in BATCHES:
            common = dict(dataset="mnist", hidden=(width,), batch_size=batch, tasks=2, lr=0.1, iterations=800)
            bare = Rig(cfg(method="sgd", **common))
            ewc = Rig(cfg(method="ewc", lam=STEP_LAM, **common), consolidated=1)
            stability = ewc.method.stability()[0]
            if stability >= 2:
                raise RuntimeError(f"step: EWC stability {stability:.2f} >= 2 at width {width}; lower STEP_LAM")
            t = interleaved({"floor": floor_call(width, batch, n), "ordered": ordered_call(width, batch, n),
                             "bare": bare.call(n), "ewc": ewc.call(n), "plain": plain_call(bare, width, n)}, rounds)
            if not (bare.finite() and ewc.finite()):
                raise RuntimeError(f"step: a network diverged at width {width}")
            ctx.floors[width, batch] = t["floor"]
            rate = product_flops(width, batch) / t["floor"] / 1e9
            print(f"    {width:>4} {batch:>5} {1e6 * t['floor']:>7.1f} {rate:>8.1f} {1e6 * t['ordered']:>8.1f} {1e6 * t['bare']:>7.1f} "
                  f"{1e6 * t['ewc']:>7.1f} {1e6 * t['plain']:>9.1f} {1e6 * bare.data_per_step:>6.1f}", flush=True)
            rows.append((width, batch, t, stability))
    for width, batch, t, stability in rows:
        r = t["bare"] / t["floor"]
        line(f"step {width}x{batch} bare/floor", r, "x", "<= 1.5x", r <= 1.5,
             f"{1e6 * t['bare']:.1f} vs {1e6 * t['floor']:.1f} us; products in step order {t['ordered'] / t['floor']:.2f}x "
             f"the floor, bare {t['bare'] / t['ordered']:.2f}x them; plain autograd {t['plain'] / t['bare']:.2f}x bare")
        r = t["ewc"] / t["bare"]
        line(f"step {width}x{batch} ewc/bare", r, "x", "<= 1.15x", r <= 1.15,
             f"{1e6 * t['ewc']:.1f} vs {1e6 * t['bare']:.1f} us; lam {STEP_LAM:g}, stability {stability:.3f}")
    wide = [t["bare"] / t["floor"] for w, b, t, _ in rows if w >= 50]
    if wide:
        line("step bare/floor, widths >= 50", max(wide), "x", "<= 1.5x", max(wide) <= 1.5,
             f"the largest of {len(wide)} shapes at W >= 50 (each above)")
    for width in (25, 100):
        rig = Rig(cfg(dataset="mnist", hidden=(width,), batch_size=100, tasks=2, method="sgd", iterations=800))
        unprofiled = next(t["bare"] for w, b, t, _ in rows if (w, b) == (width, 100))
        profile_step(rig, f"bare step 784-{width}-10, batch 100", 100 if ctx.quick else 400, unprofiled)


def profile_step(rig: Rig, label: str, steps: int, unprofiled: float) -> None:
    """Where a step's time goes: self CPU time per aten op under torch.profiler (whose own per-op
    cost inflates the small ops; the totals are for comparison with the unprofiled line)."""
    from torch.profiler import ProfilerActivity, profile

    held = [tuple(v.clone() for v in rig.draw()) for _ in range(32)]
    for i in range(50):
        rig.step(*held[i % len(held)])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            rig.step(*held[i % len(held)])
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"profile: {label}, {steps} steps: self CPU per op "
          f"({total / steps:.1f} us per step under the profiler; {1e6 * unprofiled:.1f} us measured without it)")
    print(f"    {'op':<38} {'share':>6} {'us/step':>8} {'calls/step':>10}")
    for e in events[:12]:
        print(f"    {e.key[:38]:<38} {100 * e.self_cpu_time_total / total:>5.1f}% "
              f"{e.self_cpu_time_total / steps:>8.2f} {e.count / steps:>10.1f}")
    rest = sum(e.self_cpu_time_total for e in events[12:])
    print(f"    {'(all other ops)':<38} {100 * rest / max(total, 1e-9):>5.1f}% {rest / steps:>8.2f}", flush=True)


# -- fusing the small step's operations -----------------------------------------------------------

def _sgd_step(w1, b1, w2, b2, x, y, scale):
    """The fused step's arithmetic (``StackedMLP.fused_sgd_`` with relu, one hidden layer), as one function
    of plain tensors, so that ``torch.compile`` can fuse it: forward, p - e_y, backward, SGD in place."""
    h = torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2)).clamp_min_(0)
    z = torch.baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2))
    d = z.softmax(-1).scatter_add_(-1, y.unsqueeze(-1), torch.full_like(y, -1.0, dtype=z.dtype).unsqueeze(-1))
    d.mul_(scale)
    dh = torch.bmm(d, w2)
    w2.baddbmm_(d.transpose(1, 2), h, alpha=-1)
    b2.sub_(d.sum(1))
    dh.mul_(h > 0)
    w1.baddbmm_(dh.transpose(1, 2), x, alpha=-1)
    b1.sub_(dh.sum(1))


def _sgd_step_folded(w1, w2, x1, y, scale):
    """The same step with each bias folded into its weight as a last input column (x1 and h1 end in
    ones): one product per layer and per direction, no bias sums or adds."""
    h = torch.bmm(x1, w1.transpose(1, 2)).clamp_min_(0)
    h1 = torch.cat([h, torch.ones_like(h[..., :1])], -1)
    z = torch.bmm(h1, w2.transpose(1, 2))
    d = z.softmax(-1).scatter_add_(-1, y.unsqueeze(-1), torch.full_like(y, -1.0, dtype=z.dtype).unsqueeze(-1))
    d.mul_(scale)
    dh = torch.bmm(d, w2[..., :-1])
    w2.baddbmm_(d.transpose(1, 2), h1, alpha=-1)
    dh.mul_(h > 0)
    w1.baddbmm_(dh.transpose(1, 2), x1, alpha=-1)


def bench_fusion(ctx: Ctx) -> None:
    """What fusing the small operations of a step buys at widths 25-100: the step written as one
    function (eager, as blackout runs it), the same compiled by ``torch.compile`` (compile time
    reported apart, since a sweep pays it per process and shape), and with the biases folded into the
    weights. Same batches (the MNIST split's first 6,400 images), same starting weights for each variant."""
    rounds, n = ctx.reps(11, 5), (20 if ctx.quick else 50)
    batch = 100
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(64, 1, batch, 784, generator=g)
    ys = torch.randint(0, 10, (64, 1, batch), generator=g)
    ones = torch.ones(64, 1, batch, 1)
    x1s = torch.cat([xs, ones], -1)
    print(f"fusion: one SGD step of 784-W-10, batch {batch}, one thread, median of {rounds} interleaved rounds "
          f"of {n} steps (us per step; compile = first call of the compiled step, seconds)")
    print(f"    {'W':>4} {'floor':>7} {'eager':>7} {'compiled':>9} {'folded':>7} {'compile s':>10}")
    try:
        torch.compile(lambda t: t + 1)(torch.zeros(1))
        compiler = None
    except Exception as e:  # no C++ compiler, or torch without inductor: say so, time the rest
        compiler = f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"
    rows = []
    for width in (25, 50, 100):
        gw = torch.Generator().manual_seed(width)
        w1, b1 = torch.randn(1, width, 784, generator=gw) * 0.03, torch.zeros(1, width)
        w2, b2 = torch.randn(1, 10, width, generator=gw) * 0.1, torch.zeros(1, 10)
        scale = torch.full((1, 1, 1), 0.1 / batch)

        def eager_call(params, step=_sgd_step):
            def go() -> float:
                t = time.perf_counter()
                for i in range(n):
                    step(*params, xs[i % 64], ys[i % 64], scale)
                return (time.perf_counter() - t) / n
            return go

        eager = [w1.clone(), b1.clone(), w2.clone(), b2.clone()]
        folded = [torch.cat([w1, b1.unsqueeze(-1)], -1), torch.cat([w2, b2.unsqueeze(-1)], -1)]

        def folded_call() -> float:
            t = time.perf_counter()
            for i in range(n):
                _sgd_step_folded(*folded, x1s[i % 64], ys[i % 64], scale)
            return (time.perf_counter() - t) / n

        variants = {"floor": floor_call(width, batch, n), "eager": eager_call(eager), "folded": folded_call}
        compile_s = float("nan")
        if compiler is None:
            compiled_params = [w1.clone(), b1.clone(), w2.clone(), b2.clone()]
            step_c = torch.compile(_sgd_step, dynamic=False)
            t0 = time.perf_counter()
            step_c(*compiled_params, xs[0], ys[0], scale)
            compile_s = time.perf_counter() - t0
            variants["compiled"] = eager_call(compiled_params, step_c)
        t = interleaved(variants, rounds)
        print(f"    {width:>4} {1e6 * t['floor']:>7.1f} {1e6 * t['eager']:>7.1f} "
              f"{1e6 * t.get('compiled', float('nan')):>9.1f} {1e6 * t['folded']:>7.1f} {compile_s:>10.1f}", flush=True)
        rows.append((width, t, compile_s))
    for width, t, compile_s in rows:
        best = min((k for k in ("eager", "compiled", "folded") if k in t), key=lambda k: t[k])
        r = t[best] / t["floor"]
        line(f"fusion {width}x{batch} best/floor", r, "x", "<= 1.5x", r <= 1.5,
             f"best {best}; eager {t['eager'] / t['floor']:.2f}x, "
             + (f"compiled {t['compiled'] / t['floor']:.2f}x (+{compile_s:.1f} s to compile), " if "compiled" in t
                else f"compiled: not available ({compiler}), ")
             + f"folded {t['folded'] / t['floor']:.2f}x")
        if "compiled" in t:
            saved = t["eager"] - t["compiled"]
            steps = compile_s / saved if saved > 0 else float("inf")
            note(f"W={width}: compiling pays after {steps:,.0f} steps of one shape and process"
                 if saved > 0 else f"W={width}: the compiled step is not faster than the eager one")


# -- startup --------------------------------------------------------------------------------------

HELP_IMPORTS = """
import sys
sys.argv = ["blackout", "--help"]
from blackout.cli import main
try:
    main()
except SystemExit:
    pass
print("\\nIMPORTED", " ".join(m for m in %r if m in sys.modules))
"""


def bench_startup(ctx: Ctx) -> None:
    n = ctx.reps(7, 5)
    tiny = lambda i: [*BLACKOUT, "run", "--dataset", "digits", "--tasks", "1", "--iterations", "20",
                      "--quiet", "--out", str(ctx.tmp / f"startup-{i}")]
    res = alternate({"help": lambda i: [*BLACKOUT, "--help"], "torch": lambda i: [PY, "-c", "import torch"],
                     "run": tiny}, n)
    help_s = med(p.wall for p in res["help"])
    torch_s = med(p.wall for p in res["torch"])
    inside = [json.loads((ctx.tmp / f"startup-{i}" / "result.json").read_text())["timings"]["total"] for i in range(n)]
    outside = med(p.wall - t for p, t in zip(res["run"], inside))
    line("startup blackout --help", help_s, "s", "< 0.3 s", help_s < 0.3, f"median of {n} processes")
    line("startup blackout run, outside run()", outside, "s", f"< {torch_s + 0.3:.2f} s", outside < torch_s + 0.3,
         f"whole process {med(p.wall for p in res['run']):.2f} s minus run()'s own total {med(inside):.2f} s; "
         f"target = python -c 'import torch' ({torch_s:.2f} s) + 0.3 s")
    out = run_proc([PY, "-c", HELP_IMPORTS % (HEAVY,)]).out
    got = out.rsplit("IMPORTED", 1)[1].split()
    banned = [m for m in got if m in ("torch", "matplotlib", "scipy", "sqlite3", "ray")]
    line("startup --help heavy imports", ",".join(got) or "none", "", "none", not banned,
         f"checked: {', '.join(HEAVY)}")


# -- data -----------------------------------------------------------------------------------------

LOAD_CHILD = """
import sys, time
from blackout.experiment.data.sources import load_dataset
t = time.perf_counter()
d = load_dataset("fashion-mnist", sys.argv[1])
print(time.perf_counter() - t, len(d.y_train), len(d.y_test))
"""


def p1_blackout_cmd(out: Path) -> list[str]:
    """Protocol P1 on blackout's command line."""
    return [*BLACKOUT, "run", "--dataset", "fashion-mnist", "--stream", "permuted", "--tasks", "5", "--hidden", "100",
            "--method", "ewc", "--lam", "6", "--fisher-samples", "1000", "--fisher-labels", "sampled",
            "--optimizer", "sgd", "--lr", "0.1", "--batch-size", "128", "--epochs", "1", "--eval-all",
            "--sharpness", "0", "--no-stop-on-blackout", "--seed", "0", "--threads", "1",
            "--data-dir", str(FASHION), "--quiet", "--out", str(out)]


def have_fashion() -> bool:
    return (FASHION / "train-images-idx3-ubyte.gz").exists() or (FASHION / "train-images-idx3-ubyte").exists()


def bench_data(ctx: Ctx) -> None:
    if not have_fashion():
        line("data fashion-mnist warm load", "missing", "", "< 0.2 s", False, f"no Fashion-MNIST in {FASHION}")
        line("data evaluation / training", "missing", "", "<= 10%", False, "needs Fashion-MNIST")
        return
    n = ctx.reps(5, 5)
    run_proc([PY, "-c", LOAD_CHILD, str(FASHION)])  # decodes the IDX files into the user cache once
    loads = [run_proc([PY, "-c", LOAD_CHILD, str(FASHION)]).out.split() for _ in range(n)]
    s = med(float(o[0]) for o in loads)
    line("data fashion-mnist warm load", s, "s", "< 0.2 s", s < 0.2,
         f"load_dataset of {loads[0][1]} + {loads[0][2]} images in a fresh process, decoded cache warm; median of {n}")
    out = ctx.tmp / "data-p1"
    run_proc(p1_blackout_cmd(out))
    r = json.loads((out / "result.json").read_text())
    tm = r["timings"]
    share = tm["eval"] / tm["train"]
    # the same FLOP count as the step floor: forward 2(784W + 10W) per image evaluated, the five products per image trained
    width, n_test, n_train = r["config"]["model"]["hidden"][0], r["data"]["n_test"], r["data"]["n_train"]
    evaluated = sum(v is not None for row in r["acc"] for v in row) * n_test
    bound = evaluated * 2 * width * (784 + 10) / (r["tasks_run"] * n_train * product_flops(width, 1))
    line("data evaluation / training", 100 * share, "%", f"<= {100 * bound:.0f}% (arith.)", share <= bound,
         f"P1 run: eval {tm['eval']:.2f} s, train {tm['train']:.2f} s; {evaluated:,} test images evaluated after "
         f"tasks vs {r['tasks_run'] * n_train:,} trained: at equal GEMM rates eval >= {100 * bound:.0f}% of train")


# -- reading results ------------------------------------------------------------------------------

ARCHIVE = ROOT / "docs" / "studies" / "seed-capacity-10.jsonl.gz"
READ_CHILD = """
import sys
from blackout.cli import main
code = main(sys.argv[1:])
print("\\nIMPORTED", " ".join(m for m in ("torch", "ray") if m in sys.modules))
sys.exit(code)
"""
READ_PHASES = """
import sys, time
t0 = time.perf_counter()
from blackout.api import Study
from blackout.study.capacity import analyze
from blackout.study.report import write_report
t1 = time.perf_counter()
rs = Study(sys.argv[1]).results()
t2 = time.perf_counter()
analyze(rs.runs)
t3 = time.perf_counter()
write_report(sys.argv[2], rs, title="t", figures=None)
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def read_inputs(tmp: Path, copies: int) -> tuple[Path, Path]:
    """The 50-run archive repeated ``copies`` times with new seeds and run ids, as an archive and as a
    study folder (``export`` reads a study)."""
    import gzip
    import hashlib

    from blackout.study.results import ResultSet
    from blackout.study.store import Store

    runs = ResultSet.load(ARCHIVE).runs
    dicts = []
    for k in range(copies):
        for r in runs:
            d = r.to_dict()
            if k:
                d["seed"] = d["config"]["train"]["seed"] = d["seed"] + 1000 * k
                d["run_id"] = hashlib.sha256(f"{d['run_id']}-{k}".encode()).hexdigest()[:16]
            dicts.append(d)
    archive = tmp / f"read-{len(dicts)}.jsonl.gz"
    archive.write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in dicts).encode(), mtime=0))
    study = tmp / f"read-{len(dicts)}"
    with Store(study / "results.sqlite", study.name, create=True) as store:
        store.add((d["run_id"], d["config"]) for d in dicts)
        for d in dicts:
            store.claim(d["run_id"])
            store.finish(d["run_id"], d, 1.0)
    return archive, study


def read_argvs(tmp: Path, archive: Path, study: Path, runs: int, again: list[str]) -> dict[str, Callable]:
    """Each read command's argv for repeat i: a report per repeat goes into a folder of its own, so it
    draws every figure; "report again" rewrites one report, whose figures are then unchanged."""
    return {"analyze": lambda i: ["analyze", str(archive)],
            "report": lambda i: ["report", str(archive), "--out", str(tmp / f"read-{runs}-{i}.html")],
            "report again": lambda i: again,
            "export": lambda i: ["export", str(study), "--format", "csv", "--out", str(tmp / f"read-{runs}.csv")]}


def bench_read(ctx: Ctx) -> None:
    n = ctx.reps(5, 3)
    print(f"read: analyze / report of a results archive and export of the same runs as a study (csv), each a whole "
          f"process at the default 1000 bootstrap resamples, median of {n}; report: each repeat into a new folder (every "
          f"figure drawn); report again: the same report rewritten, its figures unchanged (read back, not drawn)"
          + (f"; the 50-run commands alternated with the code in {ctx.against}" if ctx.against else ""))
    for copies, target in ((1, 2.0), (20, 10.0)):
        archive, study = read_inputs(ctx.tmp, copies)
        runs = 50 * copies
        again = ["report", str(archive), "--out", str(ctx.tmp / f"read-{runs}-again.html")]
        run_proc([PY, "-m", "blackout", *again])  # its figures, so that the line below finds them unchanged
        argvs = read_argvs(ctx.tmp, archive, study, runs, again)
        for cmd, argv in argvs.items():
            sides = {"new": lambda i, argv=argv: [PY, "-m", "blackout", *argv(i)]}
            if ctx.against and copies == 1 and cmd != "report again":
                sides["old"] = lambda i, argv=argv: ["env", f"PYTHONPATH={ctx.against}", PY, "-m", "blackout",
                                                     *argv(f"old-{i}")]
            res = alternate(sides, n)
            wall, cpu = med(p.wall for p in res["new"]), med(p.cpu for p in res["new"])
            vs = ""
            if "old" in res:
                old, old_cpu = med(p.wall for p in res["old"]), med(p.cpu for p in res["old"])
                vs = f"; before: {old:.2f} s, CPU {old_cpu:.2f} s ({old / wall:.1f}x wall, {old_cpu / cpu:.1f}x CPU)"
            line(f"read {cmd} {runs} runs", wall, "s", f"< {target:g} s", wall < target, f"CPU {cpu:.2f} s{vs}")
        got = {cmd: run_proc([PY, "-c", READ_CHILD, *argv("imports")]).out.rsplit("IMPORTED", 1)[1].split()
               for cmd, argv in argvs.items()}
        bad = sorted({m for mods in got.values() for m in mods})
        line(f"read {runs} runs imports", ",".join(bad) or "none", "", "no torch", "torch" not in bad,
             "analyze, report and export each in a fresh process")
        phases = [float(v) for v in run_proc([PY, "-c", READ_PHASES, str(archive), str(ctx.tmp / "phases.html")]).out.split()]
        note(f"where a report's time goes, one process (s): imports {phases[0]:.2f}, reading {phases[1]:.2f}, "
             f"analysis (fits, 2 x 1000 bootstrap fits a group) {phases[2]:.2f}, page and figures {phases[3]:.2f}")


# -- batched ensembles ----------------------------------------------------------------------------

ENSEMBLE_METHODS = {
    "sgd": {}, "ewc": {"lam": 5.0}, "online-ewc": {"lam": 5.0, "gamma": 0.9}, "ewc-prox": {"lam": 15.0},
    "ewc-l1": {"lam": 1.0, "prox": True}, "si": {"lam": 0.1}, "mas": {"lam": 0.01},
    "replay": {"memory": 200}, "agem": {"memory": 200},
}


def _group_vs_alone(configs: list, n: int, data_dir: str | None) -> tuple[list, list, list[float], list[float]]:
    """Train the configs as one stacked group and one after another, n times each, alternating which
    goes first; the results of the last of each and the wall times."""
    from blackout.experiment.train import run, run_group

    t_group, t_alone = [], []
    for i in range(n):
        for which in (("group", "alone") if i % 2 == 0 else ("alone", "group")):
            t = time.perf_counter()
            if which == "group":
                together = run_group(configs, data_dir)
                t_group.append(time.perf_counter() - t)
            else:
                alone = [run(c, data_dir) for c in configs]
                t_alone.append(time.perf_counter() - t)
    return together, alone, t_group, t_alone


def bench_ensemble(ctx: Ctx) -> None:
    from blackout.experiment.train import run

    tasks, its = (2, 50) if ctx.quick else (3, 300)
    n = ctx.reps(3, 1)
    print(f"ensemble: 8 runs of 784-50-10 ({tasks} permuted MNIST-split tasks, {its} steps each, seeds 0-7) as one "
          f"stacked group (run_group) vs one after another (run); median of {n}, alternating which goes first")
    run(cfg(dataset="mnist", tasks=1, hidden=(50,), iterations=20, method="ewc"), str(MNIST))  # data, lazy init
    for method, kw in ENSEMBLE_METHODS.items():
        configs = [cfg(dataset="mnist", tasks=tasks, hidden=(50,), iterations=its, method=method, seed=s, **kw)
                   for s in range(8)]
        together, alone, t_group, t_alone = _group_vs_alone(configs, n, str(MNIST))
        same = all(np.array_equal(a.acc, b.acc, equal_nan=True) for a, b in zip(together, alone))
        diff = max(float(np.nanmax(np.abs(a.acc - b.acc))) for a, b in zip(together, alone))
        stab = max((d["stability"] for r in together for d in r.diagnostics if d.get("stability") is not None),
                   default=0.0)
        r = med(t_alone) / med(t_group)
        line(f"ensemble {method}", r, "x", ">= 3x", r >= 3,
             f"{med(t_group):.2f} s group vs {med(t_alone):.2f} s one by one; accuracy matrices "
             f"{'identical' if same else f'differ, max {diff:.1e}'}; {_settings(kw)}max stability {stab:.2f}")
        note("seconds summed over the 8 runs, group / one by one: " + ", ".join(
            f"{k} {sum(x.timings.get(k, 0.0) for x in together):.2f} / {sum(x.timings.get(k, 0.0) for x in alone):.2f}"
            for k in ("train", "eval", "fisher", "sharpness")))
    # the same with small inputs, where a step is mostly per-operation overhead, which stacking shares
    configs = [cfg(dataset="digits", tasks=tasks, hidden=(32,), iterations=its, method="ewc", lam=5.0, seed=s)
               for s in range(8)]
    together, alone, t_group, t_alone = _group_vs_alone(configs, n, None)
    r = med(t_alone) / med(t_group)
    same = all(np.array_equal(a.acc, b.acc, equal_nan=True) for a, b in zip(together, alone))
    line("ensemble ewc, digits 64-32-10", r, "x", "(context)", True,
         f"{med(t_group):.2f} s group vs {med(t_alone):.2f} s one by one; accuracy matrices "
         f"{'identical' if same else 'differ'}")


def _settings(kw: dict) -> str:
    return "".join(f"{k} {v}, " for k, v in kw.items())


# -- protocol P1 ----------------------------------------------------------------------------------

def bench_p1(ctx: Ctx) -> None:
    if not have_fashion():
        line("p1 whole process", "missing", "", ">= 3x", False, f"no Fashion-MNIST in {FASHION}")
        line("p1 final avg accuracy", "missing", "", "|d| <= 1 point", False)
        return
    n = ctx.reps(5, 2)
    res = alternate({"blackout": lambda i: p1_blackout_cmd(ctx.tmp / f"p1-{i}"),
                     "baseline": lambda i: [PY, str(HERE / "baseline_ewc.py"), str(FASHION)]}, n)
    ours = [json.loads((ctx.tmp / f"p1-{i}" / "result.json").read_text()) for i in range(n)]
    base = [json.loads(p.out) for p in res["baseline"]]
    w_ours, w_base = med(p.wall for p in res["blackout"]), med(p.wall for p in res["baseline"])
    r = w_base / w_ours
    line("p1 whole process", r, "x", ">= 3x", r >= 3,
         f"baseline {w_base:.2f} s vs blackout {w_ours:.2f} s; median of {n} each, alternating; each at its "
         f"default threads (the baseline torch's, all cores; blackout a run's 1)")
    acc_o = float(np.mean(ours[0]["acc"][-1]))
    acc_b = float(np.mean(base[0]["acc"][-1]))
    d = 100 * (acc_o - acc_b)
    line("p1 final avg accuracy", d, "points", "|d| <= 1 point", abs(d) <= 1,
         f"blackout {100 * acc_o:.2f}% vs baseline {100 * acc_b:.2f}% (average over the 5 tasks after task 5; seed 0 each)")
    phases = ("data", "train", "fisher", "eval")
    outside = med(p.wall - o["timings"]["total"] for p, o in zip(res["blackout"], ours))
    interpreter = med(p.wall - b["total"] for p, b in zip(res["baseline"], base))
    note(f"phases, median s: blackout: outside run() {outside:.2f} (interpreter, imports, config, result folder) "
         + " ".join(f"{k} {med(o['timings'][k] for o in ours):.2f}" for k in phases)
         + " (its data phase includes evaluating the untrained network on every task)")
    note(f"                  baseline: interpreter {interpreter:.2f} import {med(b['import'] for b in base):.2f} "
         + " ".join(f"{k} {med(b[k] for b in base):.2f}" for k in phases))


# -- sweeps ---------------------------------------------------------------------------------------

def sweep(ctx: Ctx, name: str, extra: list[str]):
    """``blackout sweep`` of a preset as one process into a fresh study folder: (Proc, the study's ResultSet)."""
    from blackout.api import Study

    study = ctx.tmp / name
    p = run_proc([*BLACKOUT, "sweep", str(study), "--preset", name, "--data-dir", str(MNIST), "--jobs", "2", *extra])
    rs = Study(study).results()
    return p, rs


def bench_seed_capacity(ctx: Ctx) -> None:
    from blackout.config import RunConfig
    from blackout.experiment.train import steps_per_task

    extra = ["--tasks", "2", "--iterations", "200"] if ctx.quick else []
    p, rs = sweep(ctx, "seed-capacity", extra)
    floor = exact = fisher = evals = train = 0.0
    tasks = 0
    for r in rs.runs:
        c = RunConfig.from_dict(r.config)
        width, batch = c.model.hidden[0], c.train.batch_size
        steps = steps_per_task(c.train, r.data["n_train"]) * r.tasks_run
        per_step = floor_of(ctx, width, batch)
        rate = product_flops(width, batch) / per_step
        floor += train_flops(r.n_params, batch) * steps / rate
        exact += per_step * steps
        train += train_flops(r.n_params, batch) * steps
        evals += 2 * r.n_params * r.data["n_test"] * r.tasks_run * (r.tasks_run + 1) / 2
        fisher += 6 * r.n_params * c.method.get("fisher_samples", 0) * r.tasks_run
        tasks += r.tasks_run
    floor, exact = floor / 2, exact / 2  # two cores
    ratio = p.wall / exact
    line("seed-capacity sweep / floor", ratio, "x", "<= 1.2x", ratio <= 1.2,
         f"{p.wall:.1f} s wall for {len(rs.runs)} runs ({tasks} tasks trained in all; {len(rs.failed)} failed) "
         f"vs floor {exact:.1f} s = the step's matrix products at each width and batch, timed alone, "
         f"x steps trained / 2 cores")
    note(f"counting 6 x params x batch FLOPs per step instead (it includes layer 1's input gradient, which no "
         f"step computes): floor {floor:.1f} s, ratio {p.wall / floor:.2f}x; in neither floor: evaluation "
         f"{100 * evals / train:.0f}% and Fisher {100 * fisher / train:.1f}% of the training FLOPs, and the "
         f"sharpness probes")
    note(f"CPU: {p.cpu / max(1, len(rs.runs)):.1f} s per run on average ({p.cpu:.0f} s for the sweep process "
         f"and its workers){' · quick: ' + ' '.join(extra) if ctx.quick else ''}")
    phase_times(rs.runs, p.wall)


def bench_methods_blackout(ctx: Ctx, run_it: bool = False, extra: list[str] | None = None) -> None:
    if not run_it:
        print(f"{'methods-blackout sweep':<34} {'skipped':>9} {'':<6} target {'< 25 min':<16}        "
              "(run with --all or --only methods-blackout, not with --quick)", flush=True)
        return
    p, rs = sweep(ctx, "methods-blackout", extra or [])
    minutes = p.wall / 60
    line("methods-blackout sweep", minutes, "min", "< 25 min", minutes < 25,
         f"{len(rs.runs)} runs done, {len(rs.failed)} failed; {p.cpu / max(1, len(rs.runs)):.1f} CPU-s per run")
    phase_times(rs.runs, p.wall)


def phase_times(runs, wall: float) -> None:
    """Where a sweep's seconds went: each phase summed over its runs (a stacked group's time is shared
    among its members), and per method the tasks trained and the seconds per task."""
    phases = ("train", "eval", "fisher", "sharpness", "data")
    total = {k: sum(r.timings.get(k, 0.0) for r in runs) for k in phases}
    note(f"run seconds summed over {len(runs)} runs ({sum(total.values()):.0f} s; 2 cores x wall = {2 * wall:.0f} s): "
         + ", ".join(f"{k} {v:.0f}" for k, v in total.items()))
    by: dict[str, list[float]] = {}
    for r in runs:
        acc = by.setdefault(r.config["method"]["method"], [0.0, 0.0])
        acc[0] += r.tasks_run
        acc[1] += sum(r.timings.get(k, 0.0) for k in phases)
    note("per method, tasks trained and seconds per task: " + ", ".join(
        f"{m} {n:.0f} / {sec / max(1, n):.2f}" for m, (n, sec) in sorted(by.items(), key=lambda kv: -kv[1][1])))


# -- Fisher, penalty, memory ----------------------------------------------------------------------

def bench_fisher(ctx: Ctx) -> None:
    from torch import nn

    from blackout.config import ModelConfig
    from blackout.experiment.data.sources import load_dataset
    from blackout.experiment.fisher import fisher, fisher_diag_loop
    from blackout.experiment.models import build_net

    n = 300 if ctx.quick else 1000
    data = load_dataset("mnist", str(MNIST))
    x, y = data.x_train[:n].reshape(1, n, 784), data.y_train[:n].view(1, n)
    net = build_net(ModelConfig(hidden=(100,)), (1, 28, 28), 10, [0])
    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    with torch.no_grad():
        for layer, w, b in zip((model[0], model[2]), net.weights, net.biases):
            layer.weight.copy_(w[0])
            layer.bias.copy_(b[0])
    labels = torch.multinomial(model(x[0]).softmax(-1).detach(), 1, generator=torch.Generator().manual_seed(0))[:, 0]
    gens = [torch.Generator().manual_seed(0)]

    def batched() -> float:
        t = time.perf_counter()
        for _ in range(10):
            fisher(net, x, y, "sampled", gens)
        return (time.perf_counter() - t) / 10

    def loop() -> float:
        t = time.perf_counter()
        fisher_diag_loop(model, x[0], labels)
        return time.perf_counter() - t

    t = interleaved({"batched": batched, "loop": loop}, ctx.reps(5, 2))
    a = fisher(net, x, labels.view(1, n), "empirical", gens)
    b = fisher_diag_loop(model, x[0], labels)
    rel = max(float((u[0] - v).abs().max() / v.abs().max()) for u, v in zip(a, b))
    r = t["loop"] / t["batched"]
    line("fisher batched vs per-sample loop", r, "x", ">= 30x", r >= 30,
         f"{n} samples, 784-100-10: {1e3 * t['batched']:.1f} ms vs {1e3 * t['loop']:.0f} ms; max rel diff {rel:.1e}")


PENALTY_LAM = 1.0  # stability about 1.05 after 100 tasks of Fisher from 10 samples: below 2


def bench_penalty(ctx: Ctx) -> None:
    many = 30 if ctx.quick else 100
    rigs = {}
    for form in ("merged", "separate"):
        for k in (1, many):
            c = cfg(dataset="mnist", tasks=many + 1, hidden=(100,), batch_size=100, method="ewc", lam=PENALTY_LAM,
                    ewc_form=form, fisher_samples=10, iterations=800)
            rigs[form, k] = Rig(c, consolidated=k)
    n = 20 if ctx.quick else 50
    t = interleaved({key: rig.call(n) for key, rig in rigs.items()}, ctx.reps(15, 5))
    stab = rigs["merged", many].method.stability()[0]
    if stab >= 2 or not all(r.finite() for r in rigs.values()):
        raise RuntimeError(f"penalty: stability {stab:.2f} or a diverged network: timings would be of NaN arithmetic")
    r = t["merged", many] / t["merged", 1]
    sep = t["separate", many] / t["separate", 1]
    line(f"penalty step {many} tasks vs 1", r, "x", "<= 1.1x", r <= 1.1,
         f"merged EWC, 784-100-10 batch 100: {1e6 * t['merged', 1]:.0f} vs {1e6 * t['merged', many]:.0f} us; "
         f"one term per past task: {sep:.1f}x; lam {PENALTY_LAM:g}, stability {stab:.2f}")
    for k in (1, many):
        profile_step(rigs["merged", k], f"merged EWC step after {k} task{'s' * (k > 1)}, 784-100-10, batch 100",
                     100 if ctx.quick else 400, t["merged", k])


MEM_CHILD = """
import resource, sys
from blackout.config import RunConfig
from blackout.experiment.train import run
c = RunConfig.from_flat(dict(dataset="mnist", tasks=int(sys.argv[2]), hidden=(100,), iterations=20, method="ewc",
                             lam=1.0, fisher_samples=50, stop_on_blackout=False))
r = run(c, data_dir=sys.argv[1])
print(r.tasks_run, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bench_memory(ctx: Ctx) -> None:
    tasks = 30 if ctx.quick else 100
    out = run_proc([PY, "-c", MEM_CHILD, str(MNIST), str(tasks)]).out.split()
    gb = int(out[1]) * 1024 / 1e9
    line(f"memory peak RSS, {tasks} tasks", gb, "GB", "< 2 GB", gb < 2,
         f"{out[0]} permuted MNIST-split tasks, EWC, 784-100-10, 20 steps per task")


# -- the GPU --------------------------------------------------------------------------------------

def bench_gpu(ctx: Ctx) -> None:
    """What can be said here of the GPU check: that it exists, and whether this machine could run it."""
    tests = (ROOT / "tests" / "test_gpu.py").read_text() if (ROOT / "tests" / "test_gpu.py").exists() else ""
    n_tests = tests.count("\ndef test_")
    script = (HERE / "gpu.py").exists()
    line("gpu script and tests", "present" if script and n_tests else "missing", "", "present",
         bool(script and n_tests), f"benchmarks/gpu.py; {n_tests} tests in tests/test_gpu.py (marked gpu)")
    cuda = torch.cuda.is_available()
    line("gpu seed-capacity / methods-blackout", "no GPU" if not cuda else "run gpu.py", "", "< 30 s / < 3 min", False,
         "no CUDA device on this machine: run `PYTHONPATH=src python benchmarks/gpu.py --data-dir MNIST` on one"
         if not cuda else "a GPU is present: `PYTHONPATH=src python benchmarks/gpu.py --data-dir MNIST` times it")


# -- the suite ------------------------------------------------------------------------------------

BENCHES: dict[str, Callable[[Ctx], None]] = {
    "step": bench_step, "fusion": bench_fusion, "startup": bench_startup, "data": bench_data, "read": bench_read, "ensemble": bench_ensemble, "p1": bench_p1,
    "seed-capacity": bench_seed_capacity, "methods-blackout": bench_methods_blackout,
    "fisher": bench_fisher, "penalty": bench_penalty, "memory": bench_memory, "gpu": bench_gpu,
}


def machine(quick: bool) -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")),
                 platform.processor() or "unknown CPU")
    avx = " (AVX-512)" if " avx512f" in info else " (AVX2)" if " avx2" in info else ""
    mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    load = os.getloadavg()[0]
    return (f"machine: {model}{avx} · {os.cpu_count()} cores · {mem:.0f} GiB · torch {torch.__version__} · "
            f"device: cpu · Python {platform.python_version()} · 1 torch thread in-process · "
            f"load average {load:.1f}{' · quick' if quick else ''}")


def main() -> int:
    global MNIST, FASHION
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes; every line still printed")
    p.add_argument("--only", nargs="+", choices=list(BENCHES), metavar="NAME", help=f"run only these: {', '.join(BENCHES)}")
    p.add_argument("--all", action="store_true", help="every benchmark, methods-blackout (long) included")
    p.add_argument("--mnist", type=Path, help=f"MNIST IDX files (default {MNIST})")
    p.add_argument("--fashion", type=Path, help=f"Fashion-MNIST IDX files (default {FASHION})")
    p.add_argument("--repeats", type=int, help="rounds / processes per measurement (default: per benchmark)")
    p.add_argument("--against", metavar="SRC", help="read: also time the same commands with this source tree "
                   "(e.g. an older checkout's src), alternated")
    args = p.parse_args()
    MNIST, FASHION = args.mnist or MNIST, args.fashion or FASHION
    torch.set_num_threads(1)  # a run trains with cfg.train.threads, 1 by default
    print(machine(args.quick), flush=True)
    failed = []
    with tempfile.TemporaryDirectory(prefix="blackout-bench-") as tmp:
        ctx = Ctx(args.quick, args.repeats, Path(tmp), args.against)
        for name in args.only or list(BENCHES):
            try:
                if name == "methods-blackout":
                    asked = args.all or bool(args.only and name in args.only)
                    bench_methods_blackout(ctx, run_it=asked and not args.quick)
                else:
                    BENCHES[name](ctx)
            except Exception as e:  # one broken benchmark does not hide the others' lines
                failed.append(name)
                print(f"{name}: ERROR {type(e).__name__}: {e}", flush=True)
                traceback.print_exc()
    if failed:
        print(f"benchmarks that did not run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
