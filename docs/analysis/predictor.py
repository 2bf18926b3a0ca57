"""Design the blackout predictor on some seeds, report it on the others.

    python docs/analysis/predictor.py STUDY_OR_ARCHIVE ... [--design 0-4] [--validate 5-9]

The rule family: blackout at the first task t whose inputs, at its start, reach an unstable weight
already at least D from its anchor (``unstable_reach``), or whose stability number is at least S
(an instability so strong that no silence can hide it within one task). D and S are chosen on the
design seeds only, by the share of runs predicted within one task, then exactly; the validation
seeds are scored once with the chosen pair. The plain rule (first task with s >= 2) is scored on
both for comparison, with how many tasks ahead each warns.
"""

from __future__ import annotations

import argparse
import itertools
from statistics import mean

from blackout.api import Study
from blackout.study.predict import agreement

D_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e4, 1e6, float("inf"))
S_GRID = (2.0, 2.02, 2.05, 2.1, 2.15, 2.2, 2.3, 2.5, 3.0, float("inf"))


def rule(d: float, s: float):
    def first(r):
        for t, (reach, stab) in enumerate(zip(r.diagnostic("unstable_reach"), r.diagnostic("stability"))):
            if (reach is not None and reach >= d) or (stab is not None and stab >= s):
                return t + 1
        return None
    return first


def score(results, r) -> tuple:
    a = agreement(results, r)
    return a["share_within_one"] or 0.0, a["n_exact"] / max(1, a["n_compared"]), a


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
    best = max(itertools.product(D_GRID, S_GRID), key=lambda ds: score(design, rule(*ds))[:2] + (-ds[0],))
    print(f"runs: {len(design)} design (seeds {a.design}), {len(held)} validation (seeds {a.validate})")
    print(f"chosen on the design seeds: D = {best[0]:g}, S = {best[1]:g}\n")
    print("| rule | seeds | runs compared | within one task | exact | tasks ahead (mean) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in ((f"reach >= {best[0]:g} or s >= {best[1]:g}", rule(*best)), ("s >= 2 (plain)", rule(float("inf"), 2.0))):
        for label, part in (("design " + a.design, design), ("validation " + a.validate, held)):
            x = agreement(part, r)
            share = "–" if x["share_within_one"] is None else f"{x['n_agree']}/{x['n_compared']} ({x['share_within_one']:.0%})"
            lead = "–" if x["warn_lead"] is None else f"{x['warn_lead']:.2f}"
            print(f"| {name} | {label} | {x['n_compared']} | {share} | {x['n_exact']} | {lead} |")
    print()
    for label, part in (("design", design), ("validation", held)):
        x = agreement(part, rule(*best))
        misses = [(r["seed"], r["blackout_task"], r["first_unstable"]) for r in x["runs"]
                  if r["agree"] is False or (r["first_unstable"] is None) != (r["blackout_task"] is None)]
        print(f"{label}: misses (seed, blackout, predicted): {misses}")
        grid = {ds: score(part, rule(*ds))[0] for ds in itertools.product(D_GRID, S_GRID)}
        top = sorted(grid.items(), key=lambda kv: -kv[1])[:5]
        print(f"{label}: best pairs on these seeds: {[(d, s, round(v, 3)) for (d, s), v in top]}")
    print(f"\nmean lead of the plain rule over all runs: {mean(r['lead'] for r in agreement(runs, rule(float('inf'), 2.0))['runs'] if r['lead'] is not None):.2f} tasks")


if __name__ == "__main__":
    main()
