"""Where a width's blackout task comes from: how fast the stability number grows, and how long the run
survives once it passes 2 (docs/findings.md §1, why the law bends at width 800).

    python docs/analysis/capacity_terms.py [ARCHIVE ...]

Section 2's mechanism splits a run's blackout task in two: the first task trained with s >= 2, which
the growth of s sets (s_t ~ g (t - 1) reaches 2 at 1 + 2 / g), and the plateau after it, which lasts
until a silenced unit comes back. The capacity law is linear in width when g falls as 1 / width (W g
constant) and the plateau does not grow faster than the first part. Per width, mean over seeds with
95% t-intervals: g (least squares through the origin over the tasks before blackout; ``blackout.
experiment.forecast.growth``), W g, the largest importance after the first task, the first task with
s >= 2, the plateau (blackout task minus that task) and the blackout task. Runs without blackout
within the budget are left out of the last two columns (counted). Archives only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import mean, stdev

from scipy.stats import t as student

from blackout.api import Study
from blackout.experiment import forecast as fc

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def ci(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    m = mean(values)
    if len(values) < 2:
        return f"{m:.{digits}f}"
    half = student.ppf(0.975, len(values) - 1) * stdev(values) / len(values) ** 0.5
    return f"{m:.{digits}f} ({m - half:.{digits}f} to {m + half:.{digits}f})"


def terms(r) -> dict:
    s = r.diagnostic("stability")
    before = s[: (r.verdict.task or r.tasks_run + 1) - 1]  # the tasks that trained before any blackout
    first = fc.first_unstable(s)
    return {
        "g": fc.growth(before),
        "imax1": r.diagnostic("importance_max")[0],
        "first": first,
        "plateau": r.verdict.task - first if r.verdict.task and first else None,
        "blackout": r.verdict.task,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("archives", nargs="*", default=[str(STUDIES / f"{n}.jsonl.gz") for n in
                                                     ("seed-capacity-full", "seed-capacity-10")])
    a = p.parse_args()
    for path in a.archives:
        runs = [r for r in Study(path).results().runs if r.method == "ewc" and r.verdict.learned]
        print(f"\n{Path(path).name}: {len(runs)} EWC runs\n")
        print("| width | runs | g per task | W g | largest importance after task 1 | first task with s ≥ 2 "
              "| plateau (tasks) | blackout task | no blackout |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for w in sorted({sum(r.hidden) for r in runs}):
            rows = [terms(r) for r in runs if sum(r.hidden) == w]

            def col(k: str, rows: list[dict] = rows) -> list[float]:
                return [v[k] for v in rows if v[k] is not None]

            print(f"| {w} | {len(rows)} | {ci(col('g'), 4)} | {ci([w * g for g in col('g')], 1)} | "
                  f"{ci(col('imax1'), 3)} | {ci(col('first'), 1)} | {ci(col('plateau'), 1)} | "
                  f"{ci(col('blackout'), 1)} | {sum(v['blackout'] is None for v in rows)} |")


if __name__ == "__main__":
    main()
