"""Section 2's numbers on a capacity study's EWC runs: the plateau above s = 2, and the curvature.

    python docs/analysis/mechanism.py ARCHIVE [ARCHIVE ...]

Per archive: how many runs blacked out; of those, how many trained a whole task with the stability
number s = lr lambda max A at or above 2 and survived it (the plateau of docs/findings.md §2), the s of
that first task, and how many more tasks they lasted; how many of them ended by divergence or by
collapse. Then the curvature the runs record at the end of each task before the blackout task (times lr):
of the task loss alone (``sharpness_task``), apart on the tasks trained with s < 2 and s >= 2 (where a
grown weight that a revived unit reads can make the task loss itself sharp), and of the penalised loss
(``sharpness``) on the tasks trained with s >= 2.
"""

from __future__ import annotations

import argparse
from statistics import median

from blackout.api import Study
from blackout.experiment.forecast import first_unstable

SHARP = 2.2  # above every task trained with s < 2 on both MNIST splits (2.07 at most)


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} to {max(values):.2f}, median {median(values):.2f}" if values else "none"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("archives", nargs="+")
    for path in p.parse_args().archives:
        runs = [r for r in Study(path).results().runs if r.method == "ewc"]
        out = [r for r in runs if r.verdict.task]
        plateau = []  # (s of the first task trained with s >= 2, tasks lasted after it, cause)
        before = []  # (s, task loss curvature, penalised loss curvature) of every task before a blackout
        for r in out:
            s = r.diagnostic("stability")
            first = first_unstable(s)
            if first is not None and first < r.verdict.task:
                plateau.append((s[first - 1], r.verdict.task - first, r.verdict.cause))
            tasks = list(zip(s, r.diagnostic("sharpness_task"), r.diagnostic("sharpness")))[: r.verdict.task - 1]
            before.append(tasks)
        task_curv: dict[bool, list[float]] = {False: [], True: []}  # by whether the task trained with s >= 2
        for tasks in before:
            for s, v, _ in tasks:
                if v is not None:
                    task_curv[s >= 2].append(v)
        high = [(v, s) for tasks in before for s, _, v in tasks if v is not None and s >= 2]
        sharp = sum(any(s >= 2 and (v or 0) > SHARP for s, v, _ in tasks) for tasks in before)
        print(f"{path}: {len(runs)} EWC runs, {len(out)} blacked out")
        if plateau:
            lasted = [n for _, n, _ in plateau]
            causes = {c: sum(x == c for *_, x in plateau) for c in sorted({x for *_, x in plateau})}
            print(
                f"  survived a task trained with s >= 2: {len(plateau)} of {len(out)}, s {spread([s for s, _, _ in plateau])}; "
                f"lasted {min(lasted)} to {max(lasted)} more tasks, 2 or more in {sum(n >= 2 for n in lasted)}; "
                f"ended by {', '.join(f'{c} {n}' for c, n in causes.items())}"
            )
        print(
            f"  task loss curvature x lr, tasks before blackout: s < 2 {spread(task_curv[False])}; s >= 2 {spread(task_curv[True])}"
        )
        print(f"  runs whose task loss passes {SHARP} x lr on a task trained with s >= 2: {sharp} of {len(out)}")
        print(
            f"  penalised loss curvature x lr on tasks with s >= 2: {spread([v for v, _ in high])} "
            f"(s there {spread([s for _, s in high])})"
        )


if __name__ == "__main__":
    main()
