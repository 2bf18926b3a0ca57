"""Design the blackout forecast on some seeds and studies, score it once on the others.

    python docs/analysis/forecast.py [--studies docs/studies]

The forecast (``blackout.experiment.forecast``): after task k, the line s_t = g (t - 1) through the
stability numbers measured so far reaches S at t*; blackout is forecast at ceil(t*) + L, or named by
the drift rule once it fires, or "none" when that lies past the run's task budget. S and L are chosen
on the design runs (EWC, seeds 0-4 of seed-capacity-10 and stability-grid) by the share of runs named
right from the first 3 tasks (within max(2 tasks, 20%)) plus from the first 5 (within max(1, 10%));
the interval's spread is the smallest that covers the truth after 3 tasks in 80% of the design runs.
Then the held-back seeds 5-9 and the studies design never saw are scored once, with the floor (a
straight line through the largest importance after tasks 1-3, crossed with 2 / (lr lambda), plus one
task) beside it, and the other gradient-applied penalties of the keep-learning archives on their own.
A run that blacked out at or before task k has nothing left to forecast after k and is left out
of that horizon (counted). Deterministic: no randomness, archives only.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import numpy as np

from blackout.api import Study
from blackout.experiment import forecast as fc

DESIGN_STUDIES = ("seed-capacity-10", "stability-grid")
DESIGN_SEEDS = range(5)
UNSEEN = ("seed-capacity-full", "fashion-capacity", "fashion-8k", "depth", "arch", "demo")
OTHER = ("keep-learning", "keep-learning-long", "keep-learning-fashion")
HORIZONS = ((3, 2, 0.2), (5, 1, 0.1))  # (tasks measured, within tasks, within share)
S_GRID = (1.9, 2.0, 2.05, 2.1, 2.15, 2.2, 2.3, 2.4, 2.5)
L_GRID = (0, 1, 2)
SPREAD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 13))


def series(r):
    return r.diagnostic("stability"), r.diagnostic("unstable_drift"), r.config["data"]["tasks"]


def made_after(r, k, **kw) -> fc.Forecast | None:
    """The forecast the run would have printed after task k (None: it blacked out by then)."""
    s, d, budget = series(r)
    if (r.verdict.task is not None and r.verdict.task <= k) or len(s) <= k:
        return None
    return fc.forecast(s[: k + 1], d[:k], budget, **kw)


def floor(r, k=3) -> int | None:
    """A straight line through the largest importance after tasks 1-3, crossed with 2 / (lr lambda), + 1."""
    im = r.diagnostic("importance_max")[:3]
    if None in im:
        return None
    slope, icpt = np.polyfit([1, 2, 3], im, 1)
    lr, lam = r.config["train"]["lr"], r.config["method"]["lam"]
    if slope <= 0:
        return None
    task = math.ceil((fc.LIMIT / (lr * lam) - icpt) / slope) + 1
    return None if task > r.config["data"]["tasks"] else task


def score(runs, k, tasks, share, **kw) -> tuple[int, int, int]:
    """(named right, forecast, left out: blacked out by task k) after k tasks."""
    right = n = gone = 0
    for r in runs:
        f = made_after(r, k, **kw)
        if f is None:
            gone += 1
            continue
        n += 1
        right += fc.within(f.task, r.verdict.task, f.budget, tasks, share)
    return right, n, gone


def covered(runs, k, spread, s_at, lag) -> float:
    inside = n = 0
    for r in runs:
        f = made_after(r, k, s_at=s_at, lag=lag, spread=spread)
        if f is None:
            continue
        n += 1
        bt = r.verdict.task if r.verdict.task is not None and r.verdict.task <= f.budget else None
        if f.task is None or bt is None:
            inside += (f.task is None) == (bt is None)
        else:
            inside += f.lo <= bt <= (f.hi if f.hi is not None else math.inf)
    return inside / max(1, n)


def pct(right: int, n: int) -> str:
    return f"{right}/{n} ({right / n:.0%})" if n else "–"


def load(studies: Path, name: str) -> list:
    """A study archive's runs whose stability number governs the step (gradient-applied penalty, SGD)."""
    return [r for r in Study(studies / f"{name}.jsonl.gz").results().runs if r.verdict.stability_applies]


def split(studies: Path) -> tuple[list, dict[str, list]]:
    """(the design runs, the held-back runs by study): EWC runs only."""
    ewc = {name: [r for r in load(studies, name) if r.method == "ewc"] for name in DESIGN_STUDIES + UNSEEN}
    design = [r for n in DESIGN_STUDIES for r in ewc[n] if r.seed in DESIGN_SEEDS]
    held = {n: [r for r in ewc[n] if r.seed not in DESIGN_SEEDS] for n in DESIGN_STUDIES}
    held.update({n: ewc[n] for n in UNSEEN})
    # the demo's width-64 runs repeat design runs of the stability grid (digits, width 64, lambda 15, lr 0.1)
    held["demo"] = [r for r in ewc["demo"] if r.hidden != (64,)]
    return design, held


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--studies", default=str(Path(__file__).resolve().parents[1] / "studies"))
    a = p.parse_args()
    design, held = split(Path(a.studies))
    every = {name: load(Path(a.studies), name) for name in OTHER}

    def objective(sl):
        return sum(score(design, k, t, sh, s_at=sl[0], lag=sl[1], spread=0)[0] for k, t, sh in HORIZONS)

    s_at, lag = max(itertools.product(S_GRID, L_GRID), key=objective)
    spread = next((x for x in SPREAD_GRID if covered(design, 3, x, s_at, lag) >= 0.8), SPREAD_GRID[-1])
    kw = {"s_at": s_at, "lag": lag, "spread": spread}
    print(f"design: {len(design)} EWC runs (seeds 0-4 of {', '.join(DESIGN_STUDIES)})")
    print(f"chosen: S = {s_at:g}, L = {lag}, spread = {spread:g}  "
          f"(in the package: S = {fc.FORECAST_S:g}, L = {fc.FORECAST_LAG}, spread = {fc.FORECAST_SPREAD:g})")
    print(f"interval covers the truth after 3 tasks: design {covered(design, 3, spread, s_at, lag):.0%}, held-back "
          f"{covered([r for v in held.values() for r in v], 3, spread, s_at, lag):.0%}\n")

    print("| runs | after 3: within max(2, 20%) | floor after 3 | after 5: within max(1, 10%) | left out (blackout by 3 / 5) |")
    print("| --- | --- | --- | --- | --- |")

    def row(label, runs):
        r3, n3, g3 = score(runs, 3, 2, 0.2, **kw)
        r5, n5, g5 = score(runs, 5, 1, 0.1, **kw)
        fl = [fc.within(floor(r), r.verdict.task, r.config["data"]["tasks"], 2, 0.2) for r in runs
              if made_after(r, 3) is not None]
        print(f"| {label} | {pct(r3, n3)} | {pct(sum(fl), len(fl))} | {pct(r5, n5)} | {g3} / {g5} |")

    row("design (seeds 0-4)", design)
    for n, runs in held.items():
        row(f"held-back: {n}" + (" seeds 5-9" if n in DESIGN_STUDIES else ", widths other than 64" if n == "demo"
                                  else ""), runs)
    row("held-back: all", [r for v in held.values() for r in v])

    print("\nother gradient-applied penalties (keep-learning archives, width 50 and 100; no blackout within the budget "
          "counts right when none is forecast):\n")
    print("| method | runs | blackouts | after 3: within max(2, 20%) | after 5: within max(1, 10%) |")
    print("| --- | --- | --- | --- | --- |")
    methods = sorted({r.method for n in OTHER for r in every[n]})
    for m in methods:
        runs = [r for n in OTHER for r in every[n] if r.method == m]
        r3, n3, _ = score(runs, 3, 2, 0.2, **kw)
        r5, n5, _ = score(runs, 5, 1, 0.1, **kw)
        print(f"| {m} | {len(runs)} | {sum(r.verdict.task is not None for r in runs)} | {pct(r3, n3)} | {pct(r5, n5)} |")

    print("\nby horizon k (held-back, all): runs named right within max(2, 20%)")
    allheld = [r for v in held.values() for r in v]
    print("  ".join(f"k={k}: {pct(*score(allheld, k, 2, 0.2, **kw)[:2])}" for k in range(2, 11)))


if __name__ == "__main__":
    main()
