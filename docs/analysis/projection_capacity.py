"""The projection methods' own capacity against width, beside EWC's capacity law (docs/findings.md §4).

    python docs/analysis/projection_capacity.py [STUDY_OR_ARCHIVE ...] [--ewc ARCHIVE] [--below 0.85]

A projection method (gpm, owm) does not black out: it protects the subspace old tasks used and trains
only in what is left, so the network stops *learning* once that is full. Its capacity is the first task
whose accuracy just after learning it falls below ``--below`` (0.85, the keep-learning target); a run
that learned every task above it is censored at its last task + 1. Per method, the limit against width
is fitted as the capacity law is (Tobit, linear and power, AIC; sigma floored at 1/sqrt(12)), and
printed beside EWC's blackout law on the same protocol (seed-capacity-10: seed-blog, 8,000 images).
Only gpm and owm runs at their default settings and ungated are read, so a study that holds other
settings of them (keep-learning-projection, 30 tasks at width 100) adds its matching runs; without
arguments both archives are read.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path
from statistics import mean

from blackout.api import Study
from blackout.config import RunConfig
from blackout.study import tobit
from blackout.study.capacity import outcome

STUDIES = Path(__file__).resolve().parents[1] / "studies"
# the capacity study, and the 30-task runs of the same settings at width 100
ARCHIVES = [str(STUDIES / f"{name}.jsonl.gz") for name in ("projection-capacity", "keep-learning-projection")]
SIGMA_MIN = 1 / math.sqrt(12)


def learning_limit(r, below: float) -> tuple[float, bool]:
    """(first task learned below ``below``, censored): censored at tasks run + 1 when there is none."""
    for t, v in enumerate(r.diagnostic("new_task_acc"), start=1):
        if v is not None and v < below:
            return float(t), False
    return float(r.tasks_run + 1), True


def at_defaults(r) -> bool:
    """A gpm or owm run, ungated, with every method setting at its default (the projection-capacity spec's)."""
    if r.method not in ("gpm", "owm") or r.config["model"].get("gating"):
        return False
    return r.config["method"] == RunConfig.from_flat({"method": r.method}, strict=False).to_dict()["method"]


def projection_runs(paths) -> list:
    """The runs at_defaults of every study or archive in ``paths``."""
    return [r for path in paths for r in Study(path).results().runs if at_defaults(r)]


def room(runs, below: float) -> dict[tuple[str, int], list[list[float]]]:
    """Per (method, width), each run's ``subspace_use`` per layer at its learning limit: which layer is full."""
    out: dict[tuple[str, int], list[list[float]]] = defaultdict(list)
    for r in runs:
        t, _ = learning_limit(r, below)
        use = r.diagnostics[min(int(t), r.tasks_run) - 1].get("subspace_use")
        if use is not None:  # a projection method
            out[(r.method, sum(r.hidden))].append(use)
    return dict(out)


def curves(runs, below: float | None) -> dict[str, list[tuple[int, float, bool]]]:
    """Per method, (width, limit, censored) per run; ``below`` None: the blackout task instead."""
    out: dict[str, list[tuple[int, float, bool]]] = defaultdict(list)
    for r in runs:
        y, c = outcome(r) if below is None else learning_limit(r, below)
        out[r.method].append((sum(r.hidden), y, c))
    return dict(out)


def law(points: list[tuple[int, float, bool]]) -> str:
    x, y, c = zip(*points)
    lin = tobit.fit_linear(x, y, c, sigma_min=SIGMA_MIN)
    pw = tobit.fit_power(x, y, c, sigma_min=SIGMA_MIN)
    if not lin["ok"]:
        return f"no linear fit ({lin['reason']})"
    ci = lin["slope_ci"]
    text = f"{lin['intercept']:.2f} + {lin['slope']:.4f} x width" + (f" (slope {ci[0]:.4f} to {ci[1]:.4f})" if ci else "")
    if pw["ok"] and lin["aic"] is not None and pw["aic"] is not None:
        text += f"; power {pw['coef']:.3g} x width^{pw['exponent']:.2f}, AIC linear - power {lin['aic'] - pw['aic']:+.1f}"
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", nargs="*", default=ARCHIVES)
    p.add_argument("--ewc", default=str(STUDIES / "seed-capacity-10.jsonl.gz"))
    p.add_argument("--below", type=float, default=0.85)
    a = p.parse_args()
    runs = projection_runs(a.study)
    mine = curves(runs, a.below)
    ewc = curves([r for r in Study(a.ewc).results().runs if r.method == "ewc"], None)
    both = {f"{m}: first task learned below {a.below:g}": pts for m, pts in sorted(mine.items())}
    both["ewc λ=15: blackout task"] = ewc["ewc"]
    widths = sorted({w for pts in both.values() for w, _, _ in pts})
    print("| method | " + " | ".join(f"width {w}" for w in widths) + " |")
    print("| --- |" + " --- |" * len(widths))
    for name, pts in both.items():
        cells = []
        for w in widths:
            at = [(y, c) for x, y, c in pts if x == w]
            n_c = sum(c for _, c in at)
            cells.append("–" if not at else f"{'≥' if n_c else ''}{mean(y for y, _ in at):.1f} ({len(at)}"
                         + (f", {n_c} censored)" if n_c else ")"))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    for name, pts in both.items():
        print(f"{name}: {law(pts)}")
    print()
    print("share of each layer's input space protected at the limit task (the last task when censored), mean over seeds:")
    for (m, width), uses in sorted(room(runs, a.below).items()):
        print(f"  {m} width {width}: " + ", ".join(f"layer {i + 1} {mean(u):.2f}" for i, u in enumerate(zip(*uses))))


if __name__ == "__main__":
    main()
