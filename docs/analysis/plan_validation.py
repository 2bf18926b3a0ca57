"""Validate `blackout plan` against a grid oracle.

    python docs/analysis/plan_validation.py [--seeds 5-7] [--widths 32,64] [--budgets 10,20]
    python docs/analysis/plan_validation.py --preset seed-blog --widths 50,100 --dataset fashion-mnist
        --data-dir /usr/share/datasets/fashion-mnist        (one command)

For each width and held-back seed, ``plan`` probes 3 tasks at the preset's lambda (15 in the digits and
seed-blog presets) and plans lambda for each budget T; the planned run is then trained to T tasks. The
oracle trains every lambda of ``GRID`` to the largest budget and takes, per width and budget, the lambda
with the best mean average accuracy after T tasks (a run that blacked out counts at its accuracy when it
did). Printed per width and budget: how many planned runs survived T, their mean average accuracy
against the oracle's, and the compute of each (tasks trained). Runs that share an architecture train as one stacked model.
"""

from __future__ import annotations

import argparse
from statistics import mean

import numpy as np

from blackout.api import config
from blackout.experiment.plan import plan
from blackout.experiment.train import run, run_group
from blackout.study.spec import parse_axis

GRID = (1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 15.0, 20.0, 30.0, 50.0)


def avg_after(r, T: int) -> float:
    """Average accuracy over the tasks seen after task T, or at the blackout if it came first."""
    i = min(T, r.tasks_run) - 1
    row = r.acc[i, : i + 1]
    return float(np.nanmean(row))


def survived(r, T: int) -> bool:
    return r.verdict.task is None or r.verdict.task > T


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, default in (("--seeds", "5-7"), ("--widths", "32,64"), ("--budgets", "10,20")):
        p.add_argument(flag, default=default, help=f"as on the command line, e.g. {default}")
    p.add_argument("--preset", default="digits", help="the run preset planned (default digits)")
    p.add_argument("--dataset", help="the preset's dataset, or another")
    p.add_argument("--data-dir", help="the directory holding the dataset's IDX files")
    a = p.parse_args()
    data = {"dataset": a.dataset} if a.dataset else {}

    def cfg(**settings):
        return config(a.preset, **data, **settings)

    seeds, widths, budgets = (list(parse_axis("seed", v, "--")) for v in (a.seeds, a.widths, a.budgets))
    top = max(budgets)
    print("| width | budget T | planned λ (per seed) | survived T | planned avg acc | oracle λ | oracle avg acc "
          "| ratio | tasks trained: plan / grid |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in widths:
        grid = run_group([cfg(hidden=w, lam=lam, seed=s, tasks=top) for lam in GRID for s in seeds], a.data_dir)
        by_lam = {lam: grid[i * len(seeds):(i + 1) * len(seeds)] for i, lam in enumerate(GRID)}
        for T in budgets:
            plans = [plan(cfg(hidden=w, seed=s), T, train=lambda c, cb: run(c, a.data_dir, on_task=cb)) for s in seeds]
            done = run_group([pl.config for pl in plans], a.data_dir)
            oracle = max(GRID, key=lambda lam: mean(avg_after(r, T) for r in by_lam[lam]))
            got, best = mean(avg_after(r, T) for r in done), mean(avg_after(r, T) for r in by_lam[oracle])
            cost_plan = sum(pl.probe.tasks_run for pl in plans) + sum(r.tasks_run for r in done)
            cost_grid = sum(min(T, r.tasks_run) for r in grid)
            print(f"| {w} | {T} | {', '.join(f'{pl.value:g}' for pl in plans)} | "
                  f"{sum(survived(r, T) for r in done)}/{len(done)} | {got:.3f} | {oracle:g} | {best:.3f} | "
                  f"{got / best:.2f} | {cost_plan} / {cost_grid} |")


if __name__ == "__main__":
    main()
