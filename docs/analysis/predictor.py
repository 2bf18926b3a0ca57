"""Design the blackout predictor on some seeds, report it on the others.

    python docs/analysis/predictor.py STUDY_OR_ARCHIVE ... [--design 0-4] [--validate 5-9]

The rule family: blackout expected L tasks after the first task t that starts with an unstable
weight already at least D from its anchor (``unstable_drift`` of task t - 1: it grew while its unit
was shut off), or that trains with a stability number of at least S (an instability so steep that
nothing can be shut off in time). D, S and L are chosen on the design seeds only, by the share of
runs named right (within one task, or neither a blackout nor a warning), then exactly; the
validation seeds are scored once with the chosen rule. The plain rule (first task with s >= 2) is
scored on both for comparison, with how many tasks ahead of the blackout each fires.
"""

from __future__ import annotations

import argparse
import itertools
from statistics import mean

from blackout.api import Study
from blackout.study.predict import agreement, drift_rule

D_GRID = (1e2, 1e4, 1e6, 1e8, 1e12, 1e20, float("inf"))
S_GRID = (2.0, 2.05, 2.1, 2.15, 2.2, 2.3, 2.5, float("inf"))
L_GRID = (0, 1)


def rule(d: float, s: float, lag: int = 0):
    return lambda r: drift_rule(r, d, s, lag)


def score(results, r) -> tuple:
    """Runs named right (within one task, or no blackout and no warning), then exactly right."""
    a = agreement(results, r)
    return a.share_right or 0.0, a.n_exact / max(1, a.n_runs), a


def seeds(text: str) -> set[int]:
    lo, hi = (int(v) for v in text.split("-"))
    return set(range(lo, hi + 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", nargs="+")
    p.add_argument("--design", default="0-4")
    p.add_argument("--validate", default="5-9")
    a = p.parse_args()
    runs = [r for s in a.studies for r in Study(s).results() if r.verdict.stability_applies]
    design = [r for r in runs if r.seed in seeds(a.design)]
    held = [r for r in runs if r.seed in seeds(a.validate)]
    grid = list(itertools.product(D_GRID, S_GRID, L_GRID))
    best = max(grid, key=lambda dsl: score(design, rule(*dsl))[:2])
    print(f"runs: {len(design)} design (seeds {a.design}), {len(held)} validation (seeds {a.validate})")
    print(f"chosen on the design seeds: D = {best[0]:g}, S = {best[1]:g}, L = {best[2]}\n")
    print("| rule | seeds | runs | named right | within one (of compared) | exact | tasks ahead (mean) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    plain = lambda r: drift_rule(r, float("inf"), 2.0, 0)
    for name, r in ((f"drift >= {best[0]:g} or s >= {best[1]:g}, +{best[2]}", rule(*best)), ("s >= 2 (plain)", plain)):
        for label, part in (("design " + a.design, design), ("validation " + a.validate, held)):
            x = agreement(part, r)
            share = "–" if x.share_within_one is None else f"{x.n_agree}/{x.n_compared} ({x.share_within_one:.0%})"
            right = round(x.share_right * x.n_runs)
            lead = "–" if x.warn_lead is None else f"{x.warn_lead + (best[2] if r is not plain else 0):.2f}"
            print(f"| {name} | {label} | {x.n_runs} | {right}/{x.n_runs} ({x.share_right:.0%}) | {share} | "
                  f"{x.n_exact} | {lead} |")
    print()
    for label, part in (("design", design), ("validation", held)):
        x = agreement(part, rule(*best))
        misses = [(r.seed, r.blackout_task, r.first_unstable) for r in x.runs
                  if r.agree is False or (r.first_unstable is None) != (r.blackout_task is None)]
        print(f"{label}: misses (seed, blackout, predicted): {misses}")
        scores = {dsl: score(part, rule(*dsl))[0] for dsl in grid}
        top = sorted(scores.items(), key=lambda kv: -kv[1])[:5]
        print(f"{label}: best rules on these seeds alone: {[(d, s, lag, round(v, 3)) for (d, s, lag), v in top]}")
    print(f"\nmean lead of the plain rule over all runs: "
          f"{mean(r.lead for r in agreement(runs, plain).runs if r.lead is not None):.2f} tasks")


if __name__ == "__main__":
    main()
