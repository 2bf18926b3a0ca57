"""The seed's next questions on all of MNIST: convolution, and the L1 form of EWC (docs/findings.md §5).

    python docs/analysis/seed_questions.py [ARCHIVE ...] [--seeds 0-4]

Per setting (stream, network, method and strength), over seeds, mean with its 95% t-interval: the
blackout task (runs without one within the budget are counted, not averaged), the first task learned
below 0.85 (where a network stops learning new tasks, whether or not it blacks out) and the average
accuracy over the tasks so far after tasks 5, 10 and 30 (a run that stopped at its blackout counts with
its last accuracies, at chance), and how fast the stability number grows against its first step: s at
task 6 over 5 times s at task 2 (1: every task adds to the largest importance what the first did). EWC's own MLP runs of the same protocol come from seed-capacity-full:
width 100, and width 200, the MLP with about the CNN's weights. Archives only.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from capacity_terms import ci  # the scripts beside this one
from projection_capacity import learning_limit

from blackout.api import Study

STUDIES = Path(__file__).resolve().parents[1] / "studies"
REFERENCE = {"seed-capacity-full": {(100,), (200,)}}  # EWC's MLPs of the protocol, at these widths


def setting(r) -> str:
    m, d, meth = r.config["model"], r.config["data"], r.config["method"]
    net = (f"CNN {'-'.join(map(str, m['channels']))} + {m['hidden'][0]}" if m["arch"] == "cnn"
           else "MLP " + "-".join(map(str, m["hidden"])))
    how = f"{r.method} λ={meth['lam']:g}" + (" prox" if meth.get("prox") else "")
    return f"{d['stream']} ({d['scenario']}, {d['tasks']} tasks) | {net} | {how}"


def acc_after(r, k: int) -> float | None:
    """Average accuracy over tasks 1..k after task k; a run that stopped before k: its last row."""
    if r.acc.shape[0] == 0 or r.config["data"]["tasks"] < k:
        return None
    row = min(k, r.acc.shape[0]) - 1
    return float(np.nanmean(r.acc[row, : row + 1]))


def growth(r) -> float | None:
    """s_6 / (5 s_2): the mean addition of tasks 1-5 to the largest importance, over the first task's."""
    s = r.diagnostic("stability")
    return s[5] / (5 * s[1]) if len(s) > 5 and s[1] and s[5] is not None else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("archives", nargs="*", default=[str(STUDIES / f"{n}.jsonl.gz") for n in
                                                     ("cnn-full", "ewc-l1-full", "seed-capacity-full")])
    p.add_argument("--seeds", default="0-4", help="the seeds of each setting (a range lo-hi)")
    a = p.parse_args()
    lo, hi = map(int, a.seeds.split("-"))
    groups = defaultdict(list)
    for path in a.archives:
        widths = REFERENCE.get(Path(path).name.removesuffix(".jsonl.gz"))
        for r in Study(path).results().runs:
            if lo <= r.seed <= hi and (widths is None or tuple(r.config["model"]["hidden"]) in widths):
                groups[setting(r)].append(r)
    print("| stream | network | method | runs | blackout task (CI) | learned below 0.85 at (CI) | "
          "acc after 5 | acc after 10 | acc after 30 | s growth | ended by |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, runs in sorted(groups.items()):
        blackouts = [r.verdict.task for r in runs if r.verdict.task]
        none = len(runs) - len(blackouts)
        limits = [learning_limit(r, 0.85) for r in runs]
        below = [y for y, censored in limits if not censored]
        after = {k: [v for v in (acc_after(r, k) for r in runs) if v is not None] for k in (5, 10, 30)}
        causes = defaultdict(int)
        for r in runs:
            causes[r.verdict.cause or "no blackout"] += 1
        print(
            f"| {name} | {len(runs)} | {ci(blackouts, 1)}{f'; {none} none' if none else ''} | "
            f"{ci(below, 1)}{f'; {len(runs) - len(below)} never' if len(below) < len(runs) else ''} | "
            f"{ci(after[5], 3)} | {ci(after[10], 3)} | {ci(after[30], 3)} | "
            f"{ci([g for g in map(growth, runs) if g is not None], 2)} | "
            + ", ".join(f"{c} {n}" for c, n in sorted(causes.items())) + " |"
        )


if __name__ == "__main__":
    main()
