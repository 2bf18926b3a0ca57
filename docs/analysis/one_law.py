"""One law for the blackout task across width, depth, architecture, dataset, lambda and lr?

    python docs/analysis/one_law.py [--studies docs/studies]

The findings say blackout is set by the *largest* importance, not the number of weights: a run fails
once lr x lambda x max_i A_i passes 2 (and a plateau after). If every task added to the largest
accumulated importance what the first task gave it, the limit would come after

    x = 2 / (lr x lambda x A1)    tasks, A1 = the largest importance after task 1,

so the blackout task would be about 1 + x plus the plateau. This script tests that as one relation over
every EWC run with plain SGD in the committed archives (each run its own x), fitting
blackout task = c x^k by censored maximum likelihood (runs without blackout are lower bounds; Tobit,
as the capacity law), and prints where it fails: per study and setting, the mean blackout task against
the law's, and their ratio. Archives only.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path
from statistics import mean

import numpy as np

from blackout.api import Study
from blackout.study import tobit
from blackout.study.capacity import outcome

STUDIES = ("seed-capacity-full", "depth-full", "cnn-full", "seed-capacity-10", "fashion-capacity", "fashion-8k", "stability-grid", "depth",
           "arch", "demo")


def x_of(r) -> float | None:
    """2 / (lr lambda A1): how many first-task importances the stability limit is away."""
    a1 = r.diagnostic("importance_max")[0] if r.diagnostics else None
    lr, lam = r.config["train"]["lr"], r.config["method"].get("lam")
    return 2 / (lr * lam * a1) if a1 and lam else None


def same(r) -> str:
    """A run's configuration but its task budget: the same training, whichever study ran it."""
    model = {k: v for k, v in r.config["model"].items() if k != "channels" or r.config["model"]["arch"] == "cnn"}
    cfg = {**r.config, "data": {k: v for k, v in r.config["data"].items() if k != "tasks"}, "model": model}
    return json.dumps(cfg, sort_keys=True)


def setting(r) -> str:
    m, d = r.config["model"], r.config["data"]
    net = f"cnn {','.join(map(str, m['channels']))} + {m['hidden'][0]}" if m["arch"] == "cnn" else \
        "-".join(map(str, m["hidden"]))
    stream = "" if d["stream"] == "permuted" else f" {d['stream']}"
    return f"{d['dataset']}{stream} {net} λ={r.config['method']['lam']:g} lr={r.config['train']['lr']:g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--studies", default=str(Path(__file__).resolve().parents[1] / "studies"))
    a = p.parse_args()
    points = []  # (study, setting, x, blackout task, censored)
    seen = set()
    for name in STUDIES:
        for r in Study(Path(a.studies) / f"{name}.jsonl.gz").results().runs:
            if r.method != "ewc" or not r.verdict.stability_applies or not r.verdict.learned or same(r) in seen:
                continue
            seen.add(same(r))  # depth, arch and the demo repeat runs of the stability grid (other budgets)
            x = x_of(r)
            if x is not None:
                y, c = outcome(r)
                points.append((name, setting(r), x, y, c))
    x, y, c = (np.array([pt[i] for pt in points]) for i in (2, 3, 4))
    pw = tobit.fit_power(x, y, c.astype(bool), sigma_min=1 / math.sqrt(12))
    lin = tobit.fit_linear(x, y, c.astype(bool), sigma_min=1 / math.sqrt(12))
    k, coef = pw["exponent"], pw["coef"]
    print(f"{len(points)} EWC runs ({int(c.sum())} without blackout, lower bounds) from {len(STUDIES)} archives")
    print(f"power law: blackout task = {coef:.3g} x^{k:.3f} (exponent {pw['exponent_ci'][0]:.3f} to "
          f"{pw['exponent_ci'][1]:.3f}); line: {lin['intercept']:.2f} + {lin['slope']:.3f} x "
          f"(slope {lin['slope_ci'][0]:.3f} to {lin['slope_ci'][1]:.3f}), R² {lin['r2']:.3f}")
    u = ~c.astype(bool)
    ratio = y[u] / (coef * x[u] ** k)
    print(f"blackout runs within 25% of the power law: {np.mean(np.abs(ratio - 1) <= 0.25):.0%}; within 50%: "
          f"{np.mean(np.abs(ratio - 1) <= 0.5):.0%}\n")
    groups = defaultdict(list)
    for pt in points:
        groups[(pt[0], pt[1])].append(pt)
    print("| study | setting | runs | mean x | mean blackout task | law's | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (study, label), pts in sorted(groups.items(), key=lambda kv: (kv[0][0], mean(p[2] for p in kv[1]))):
        mx, my = mean(p[2] for p in pts), mean(p[3] for p in pts)
        law = mean(coef * p[2] ** k for p in pts)
        n_c = sum(p[4] for p in pts)
        print(f"| {study} | {label} | {len(pts)}{f' ({n_c} ≥)' if n_c else ''} | {mx:.1f} | "
              f"{'≥' if n_c else ''}{my:.1f} | {law:.1f} | {my / law:.2f} |")


if __name__ == "__main__":
    main()
