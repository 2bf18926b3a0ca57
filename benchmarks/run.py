"""blackout's benchmarks: each prints a ratio or value measured in this one run, and its target.

    python benchmarks/run.py                 # the full suite (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick         # smaller sizes, every line still printed (about 2 minutes)
    python benchmarks/run.py --only fisher penalty

Timings are medians of repeats after a warm-up; nothing here asserts a time.
Data: the MNIST test files in ../shared/data/mnist (or --mnist DIR) and Debian's full Fashion-MNIST.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MNIST = ROOT.parent / "shared" / "data" / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def timed(fn, repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def line(name: str, value: float, unit: str, target: str, ok: bool, extra: str = "") -> None:
    print(f"{name:<28} {value:>10.2f} {unit:<6} target {target:<10} {'PASS' if ok else 'SHORT':<5} {extra}", flush=True)


def cfg(**kw):
    from blackout.config import RunConfig

    return RunConfig.from_flat(kw)


# -- 1. Fisher -------------------------------------------------------------------------------

def bench_fisher(quick: bool) -> None:
    from torch import nn

    from blackout.fisher import fisher_diag, fisher_diag_loop, sample_labels

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    n = 300 if quick else 1000
    x = torch.rand(n, 784)
    labels = sample_labels(model, x, None, "sampled", generator=torch.Generator().manual_seed(0))
    fast = timed(lambda: fisher_diag(model, x, labels), repeats=5)
    slow = timed(lambda: fisher_diag_loop(model, x, labels), repeats=1 if quick else 3)
    a, b = fisher_diag(model, x, labels), fisher_diag_loop(model, x, labels)
    rel = max(((u - v).abs().max() / v.abs().max()).item() for u, v in zip(a, b))
    line("fisher batched vs loop", slow / fast, "x", ">= 30x", slow / fast >= 30,
         f"{n} samples, 784-100-10: {1e3 * fast:.1f} ms vs {1e3 * slow:.0f} ms; max rel diff {rel:.1e}")


# -- 2. Penalty cost after many tasks ----------------------------------------------------------

def bench_penalty(quick: bool) -> None:
    import torch.nn.functional as F

    from blackout.data.sources import load_dataset
    from blackout.data.streams import Stream
    from blackout.methods import METHODS
    from blackout.models import build_model

    tasks = 30 if quick else 100
    data = load_dataset("mnist", MNIST)
    ratios = {}
    for form in ("merged", "separate"):
        # lambda small enough that lr x lambda x max A stays below 2 after 100 tasks: a diverging
        # model's NaN arithmetic would be timed otherwise
        c = cfg(dataset="mnist", tasks=tasks, hidden=(100,), method="ewc", lam=0.5, ewc_form=form, fisher_samples=10)
        stream = Stream(c.data, data, 0)
        torch.manual_seed(0)
        model = build_model(c.model, (1, 28, 28), 10)
        method = METHODS["ewc"](c, model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = stream.batch(stream.tasks[0], "train", torch.arange(100))

        def step():
            loss = F.cross_entropy(model(x), y)
            pen = method.penalty(model, x, stream.tasks[0])
            opt.zero_grad()
            (loss + pen).backward()
            opt.step()

        method.consolidate(model, stream.tasks[0], stream)
        after_one = timed(step, repeats=200, warmup=20)
        for t in range(1, tasks):
            method.consolidate(model, stream.tasks[t], stream)
        after_many = timed(step, repeats=200, warmup=20)
        stability = method.stability()
        finite = all(torch.isfinite(p).all() for p in model.parameters())
        if not finite or stability >= 2:
            raise RuntimeError(f"penalty benchmark: the model diverged (stability {stability:.2f})")
        ratios[form] = (after_many / after_one, after_one, after_many)
    r, one, many = ratios["merged"]
    line(f"penalty step {tasks} vs 1 task", r, "x", "<= 1.1x", r <= 1.1,
         f"merged: {1e6 * one:.0f} vs {1e6 * many:.0f} us/step; separate terms: {ratios['separate'][0]:.1f}x; "
         f"stability {stability:.2f}")


# -- 3. Batched ensembles ----------------------------------------------------------------------

def bench_ensemble(quick: bool) -> None:
    import numpy as np

    from blackout.ensemble import run_ensemble
    from blackout.train import run

    its = 100 if quick else 300
    configs = [cfg(dataset="mnist", tasks=3, hidden=(50,), iterations=its, lam=15.0, seed=s) for s in range(8)]
    run(configs[0], str(MNIST))  # data load and warm-up
    t = time.perf_counter()
    together = run_ensemble(configs, str(MNIST))
    t_ens = time.perf_counter() - t
    t = time.perf_counter()
    alone = [run(c, str(MNIST)) for c in configs]
    t_one = time.perf_counter() - t
    diff = max(float(np.nanmax(np.abs(a.acc - b.acc))) for a, b in zip(together, alone))
    r = t_one / t_ens
    line("ensemble 8x 784-50-10", r, "x", ">= 3x", r >= 3,
         f"{t_ens:.1f} s together vs {t_one:.1f} s one by one; max |acc diff| {diff:.1e}; {torch.get_num_threads()} threads")


# -- 4. Throughput -----------------------------------------------------------------------------

def bench_throughput(quick: bool) -> None:
    from blackout.data.sources import load_dataset
    from blackout.data.streams import Stream
    from blackout.methods import METHODS
    from blackout.models import build_model, n_params
    from blackout.train import train_task

    size = 2048
    a, b = torch.randn(size, size), torch.randn(size, size)
    peak = 2 * size**3 / min(timed(lambda: a @ b, repeats=5) for _ in range(3)) / 1e9
    batch, steps = 256, (30 if quick else 150)
    c = cfg(dataset="mnist", tasks=1, hidden=(1000, 1000), method="sgd", batch_size=batch, iterations=steps)
    stream = Stream(c.data, load_dataset("mnist", MNIST), 0)
    torch.manual_seed(0)
    model = build_model(c.model, (1, 28, 28), 10)
    method = METHODS["sgd"](c, model)
    gen = torch.Generator().manual_seed(0)
    sec = timed(lambda: train_task(model, method, stream, stream.tasks[0], c.train, gen), repeats=3)
    # forward 2PB FLOPs, backward 4PB (weights and inputs), P weights, B batch: 6PB per step
    rate = 6 * n_params(model) * batch * steps / sec / 1e9
    share = rate / peak
    line("throughput 784-1000-1000-10", 100 * share, "%", ">= 75%", share >= 0.75,
         f"{rate:.0f} GFLOP/s training vs {peak:.0f} GFLOP/s fp32 matmul ({size}^3), batch {batch}")


# -- 5. End to end, protocol P1 ----------------------------------------------------------------

P1_CHILD = """
import time, json, sys
t0 = time.perf_counter()
from blackout.config import RunConfig
from blackout.train import run
imp = time.perf_counter() - t0
c = RunConfig.from_flat(dict(dataset="fashion-mnist", stream="permuted", tasks=5, hidden=(100,), method="ewc",
    lam=6.0, fisher_samples=1000, fisher_labels="sampled", optimizer="sgd", lr=0.1, batch_size=128, epochs=1.0,
    eval_all=True, train_limit=int(sys.argv[1]), stop_on_blackout=False))
r = run(c)
print(json.dumps({"import": imp, **r.timings, "total": time.perf_counter() - t0, "acc": r.acc.tolist()}))
"""


def bench_p1(quick: bool) -> None:
    if not (FASHION / "train-images-idx3-ubyte.gz").exists():
        print("p1: skipped (apt-get install dataset-fashion-mnist)")
        return
    limit = "12000" if quick else "0"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    ours = json.loads(subprocess.run([sys.executable, "-c", P1_CHILD, limit], capture_output=True, text=True,
                                     env=env, check=True).stdout)
    base_cmd = [sys.executable, str(HERE / "baseline_ewc.py"), str(FASHION)] + (["--train-limit", limit] if quick else [])
    base = json.loads(subprocess.run(base_cmd, capture_output=True, text=True, env=env, check=True).stdout)
    phases = " ".join(f"{k} {base[k]:.1f}/{ours[k]:.1f}s" for k in ("import", "data", "train", "fisher", "eval"))
    line("P1 whole process", base["total"] / ours["total"], "x", ">= 3x", base["total"] / ours["total"] >= 3,
         f"{base['total']:.1f} s baseline vs {ours['total']:.1f} s; phases baseline/blackout: {phases}")
    line("P1 Fisher phase", base["fisher"] / ours["fisher"], "x", ">= 30x", base["fisher"] / ours["fisher"] >= 30)
    line("P1 training phase", base["train"] / ours["train"], "x", ">= 2x", base["train"] / ours["train"] >= 2)
    acc_b = sum(base["acc"][-1]) / 5
    acc_o = sum(ours["acc"][-1]) / 5
    line("P1 final avg accuracy", 100 * (acc_o - acc_b), "points", "|d| <= 1", abs(acc_o - acc_b) <= 0.01,
         f"blackout {100 * acc_o:.2f}% vs baseline {100 * acc_b:.2f}%")


# -- 6. Memory ---------------------------------------------------------------------------------

MEM_CHILD = """
import resource, sys
from blackout.config import RunConfig
from blackout.train import run
c = RunConfig.from_flat(dict(dataset="mnist", tasks=int(sys.argv[2]), hidden=(100,), iterations=20, method="ewc", lam=1.0,
    fisher_samples=50, stop_on_blackout=False))
r = run(c, data_dir=sys.argv[1])
print(r.tasks_run, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bench_memory(quick: bool) -> None:
    tasks = 30 if quick else 100
    out = subprocess.run([sys.executable, "-c", MEM_CHILD, str(MNIST), str(tasks)], capture_output=True, text=True,
                         check=True).stdout.split()
    gb = int(out[1]) / 1024**2
    line(f"peak RSS, {tasks} permuted tasks", gb, "GB", "< 2 GB", gb < 2, f"{out[0]} tasks run (MNIST test-set split)")


# -- 7. Scaling --------------------------------------------------------------------------------

def bench_scaling(quick: bool) -> None:
    from blackout.train import run

    its = 100 if quick else 400

    def per_task(**kw):
        r = run(cfg(dataset="mnist", iterations=its, stop_on_blackout=False, method="ewc", **kw), str(MNIST))
        return r.timings["train"] / r.tasks_run, r.timings["fisher"] / r.tasks_run

    print(f"scaling (seconds per task, {its} steps of batch 100; train / Fisher):")
    for w in (100, 400, 1600):
        tr, fi = per_task(tasks=3, hidden=(w,))
        print(f"  width {w:>5}: {tr:.3f} / {fi:.3f}")
    for t in (5, 10, 20):
        tr, fi = per_task(tasks=t, hidden=(100,))
        print(f"  tasks {t:>5}: {tr:.3f} / {fi:.3f}")
    for n in (250, 1000, 4000):
        tr, fi = per_task(tasks=3, hidden=(100,), fisher_samples=n)
        print(f"  Fisher samples {n:>5}: {tr:.3f} / {fi:.3f}")


BENCHES = {"fisher": bench_fisher, "penalty": bench_penalty, "ensemble": bench_ensemble,
           "throughput": bench_throughput, "p1": bench_p1, "memory": bench_memory, "scaling": bench_scaling}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes; every line still printed")
    p.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    p.add_argument("--mnist", type=Path, help="directory with the MNIST IDX files (default: ../shared/data/mnist)")
    args = p.parse_args()
    if args.mnist:
        global MNIST
        MNIST = args.mnist
    torch.set_num_threads(args.threads)
    print(f"blackout benchmarks · torch {torch.__version__} · {args.threads} threads · {os.cpu_count()} cores"
          f"{' · quick' if args.quick else ''}")
    for name in args.only or BENCHES:
        BENCHES[name](args.quick)


if __name__ == "__main__":
    main()
