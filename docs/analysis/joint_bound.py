"""The joint bound of docs/findings.md §4: what a network of a given width holds at all, by task.

    python docs/analysis/joint_bound.py ARCHIVE [ARCHIVE ...]

Joint training on every task seen so far, per width and batch form (``per-task``: a batch per
earlier task each step; ``fixed``: one batch of the step's size shared by all tasks seen, the same
compute as every other method): average accuracy over the tasks seen after 10, 30 and 100 tasks (mean
over seeds with its 95% t-interval) and the accuracy on the task just learned there.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from statistics import mean

from keep_learning import interval  # the script beside this one

from blackout.api import Study
from blackout.study.compare import avg_after

CHECKPOINTS = (10, 30, 100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("archives", nargs="+")
    groups = defaultdict(list)
    for path in p.parse_args().archives:
        for r in Study(path).results().runs:
            if r.method == "joint":
                groups[(sum(r.hidden), r.config["method"]["joint_batch"])].append(r)
    heads = ["width", "batch", "runs"] + [f"{x} {k}" for k in CHECKPOINTS for x in ("acc after", "new-task acc at")]
    print("| " + " | ".join(heads) + " |")
    print("|" + " --- |" * len(heads))
    for (width, batch), runs in sorted(groups.items()):
        cells = [str(width), batch, str(len(runs))]
        for k in CHECKPOINTS:
            reached = [r for r in runs if r.tasks_run >= k]
            acc = [v for v in (avg_after(r, k)[0] for r in reached) if v is not None]
            new = [r.diagnostic("new_task_acc")[k - 1] for r in reached]
            cells += [f"{mean(acc):.3f} ({interval(acc)})", f"{mean(new):.3f}"] if acc else ["–", "–"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
