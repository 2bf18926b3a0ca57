"""The settings the long keep-learning studies carry forward, chosen from the 30-task study alone.

    python docs/analysis/best_settings.py STUDY_OR_ARCHIVE > long.toml

Writes a sweep file: the three task-agnostic settings that store no data with the highest average
accuracy after 30 tasks at width 100 (mean over seeds), the best gated (task-aware) setting, the
best setting that stores data, and sgd, ewc λ=15 and ewc-prox λ=15 for reference, each at width 100
and seeds 0-4, for the study's base protocol; the task count and dataset are set by flags.
"""

from __future__ import annotations

import sys
from statistics import mean

from blackout.api import Study
from blackout.study.compare import setting_labels

STORES = ("replay", "agem")
REFERENCE = [("sgd", {}), ("ewc", {"lam": 15.0}), ("ewc-prox", {"lam": 15.0})]


def main() -> None:
    rs = Study(sys.argv[1]).results()
    labels = setting_labels(rs.runs)
    by: dict[str, list] = {}
    for r in rs.runs:
        if r.hidden == (100,):
            by.setdefault(labels[r.run_id] + (" gated" if r.config["model"].get("gating") else ""), []).append(r)

    def acc30(runs) -> float:
        return mean(float(r.acc[min(29, r.tasks_run - 1), : min(30, r.tasks_run)].mean()) for r in runs)

    ranked = sorted(by.items(), key=lambda kv: -acc30(kv[1]))
    agnostic = [kv for kv in ranked if not kv[0].endswith("gated") and kv[1][0].method not in STORES]
    chosen = agnostic[:3] + [next(kv for kv in ranked if kv[0].endswith("gated")),
                             next(kv for kv in ranked if kv[1][0].method in STORES)]
    grids = [(runs[0].method, runs[0].method_settings, runs[0].config["model"].get("gating", 0.0)) for _, runs in chosen]
    grids += [(m, s, 0.0) for m, s in REFERENCE]
    print('study = "keep-learning-long"\npreset = "seed-blog"\n[base]\nhidden = [100]')
    for (label, runs), _ in zip(chosen, range(len(chosen))):
        print(f"# {label}: {acc30(runs):.3f} after 30 tasks")
    seen = set()
    for method, settings, gating in grids:
        key = (method, tuple(sorted(settings.items())), gating)
        if key in seen:
            continue
        seen.add(key)
        print(f'[[grid]]\nmethod = ["{method}"]\nseed = [0, 1, 2, 3, 4]')
        for k, v in settings.items():
            print(f"{k} = [{v!r}]".replace("True", "true").replace("False", "false").replace("'", '"'))
        if gating:
            print(f"gating = [{gating}]")


if __name__ == "__main__":
    main()
