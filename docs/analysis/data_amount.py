"""Does the amount of training data change the capacity law? Two studies of one protocol side by side.

    python docs/analysis/data_amount.py STUDY_A STUDY_B [--bootstrap 1000]

Per width, each study's blackout tasks over seeds (mean and 95% t-interval; a width with runs that
never blacked out gives a lower bound, marked ">"). Then each study's censored (Tobit) line fitted on
the widths both ran, as ``blackout analyze`` fits it, and the difference of the two slopes with a
percentile interval from independent bootstraps of the two studies' runs: an interval that holds 0
means the data could not tell the slopes apart.
"""

from __future__ import annotations

import argparse

import numpy as np

from blackout.api import Study
from blackout.study.analysis import Group, Interval
from blackout.study.capacity import TASK_SIGMA_MIN, analyze
from blackout.study.tobit import bootstrap_slopes, fit_linear


def curve(path: str, n_boot: int) -> Group:
    """A study's one capacity curve, as ``blackout analyze`` reads it (its points in the order its
    seeded bootstrap resamples them, and the per-width intervals)."""
    groups = analyze(Study(path).results().runs, "width", n_boot).groups
    if len(groups) != 1:
        raise SystemExit(f"{path}: expected one capacity curve (one data split, one setting), got {len(groups)}")
    return groups[0]


def cell(row: Interval | None) -> str:
    if row is None:
        return "(not run)"
    if row.n_censored == row.n:
        return f"> {row.mean - 1:.0f} (no blackout)"
    mark = "> " if row.mean_is_lower_bound else ""
    ci = f" ({row.ci_lo:.1f} to {row.ci_hi:.1f})" if row.ci_lo is not None else ""
    return f"{mark}{row.mean:.1f}{ci}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", nargs=2)
    p.add_argument("--bootstrap", type=int, default=1000)
    a = p.parse_args()
    curves = [curve(s, a.bootstrap) for s in a.studies]
    rows = [{r.x: r for r in g.summary} for g in curves]
    widths = sorted(set(rows[0]) | set(rows[1]))
    print("| width | " + " | ".join(f"{g.settings['split']}, mean (CI)" for g in curves) + " |")
    print("| --- | --- | --- |")
    for w in widths:
        print(f"| {w:g} | " + " | ".join(cell(r.get(w)) for r in rows) + " |")
    shared = sorted(set(rows[0]) & set(rows[1]))
    print(f"\nTobit lines on the widths both studies ran ({', '.join(f'{w:g}' for w in shared)}):")
    slopes = []
    for g, seed in zip(curves, (1, 2)):  # other seeds than the intervals': independent draws
        x, y, c = (np.array([getattr(p, k) for p in g.points if p.x in shared]) for k in ("x", "y", "censored"))
        fit = fit_linear(x, y, c, n_boot=a.bootstrap, seed=0, sigma_min=TASK_SIGMA_MIN)
        lo, hi = fit["slope_ci"]
        print(
            f"  {g.settings['split']}: blackout task = {fit['intercept']:.2f} + {fit['slope']:.4f} x width "
            f"(slope {lo:.4f} to {hi:.4f}; {int(c.sum())} of {len(c)} runs censored)"
        )
        slopes.append(bootstrap_slopes(x, y, c, a.bootstrap, seed, TASK_SIGMA_MIN))
    n = min(len(s) for s in slopes)
    diff = slopes[1][:n] - slopes[0][:n]
    lo, hi = np.quantile(diff, [0.025, 0.975])
    print(
        f"  slope of the second minus the first: {np.median(diff):+.4f} (95% interval {lo:+.4f} to {hi:+.4f}; "
        f"{n} resamples; {'holds 0: no difference shown' if lo <= 0 <= hi else 'excludes 0'})"
    )


if __name__ == "__main__":
    main()
