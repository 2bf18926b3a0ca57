"""The keep-learning tables of docs/findings.md: one row per setting, ranked by average accuracy at the
last checkpoint, with a 95% t-interval over seeds.

    python docs/analysis/keep_learning.py STUDY_OR_ARCHIVE [MORE ...] [--width 100] [--top N]

Several archives are read as one table (each keeps its own numerics version: an archive that extends
a study with new settings, such as keep-learning-projection, is shown beside it).

Columns: runs, blackouts (of runs) and their causes, average accuracy over the tasks seen after 10, 30
(and 100) tasks, mean over seeds (a run that blacked out earlier counts with its blackout row, marked
†), the interval of the last checkpoint, that accuracy as a fraction of the joint bound's (joint
training on every task seen, same width; "–" when the study has none), new-task accuracy at the last
task, tasks retained, the fraction of dead hidden units at the last task, and what the method keeps
between tasks in floats (s: stored samples among them). A gated (task-aware) setting is marked "xdg".
"""

from __future__ import annotations

import argparse
from statistics import mean, stdev

from scipy.stats import t as student

from blackout.api import Study
from blackout.cli.render import kept
from blackout.study.compare import avg_after, checkpoints_for, method_table, network_label, setting_labels


def interval(values: list[float]) -> str:
    if len(values) < 2:
        return "–"
    half = student.ppf(0.975, len(values) - 1) * stdev(values) / len(values) ** 0.5
    return f"{mean(values) - half:.3f} to {mean(values) + half:.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", nargs="+")
    p.add_argument("--width", type=int, default=100)
    p.add_argument("--top", type=int, default=0, help="only the N best rows (0: all)")
    a = p.parse_args()
    runs = [r for path in a.study for r in Study(path).results().runs if r.hidden == (a.width,)]
    checkpoints = tuple(k for k in checkpoints_for(runs) if k != 20)
    last = checkpoints[-1]
    labels = setting_labels(runs)
    rows = method_table(runs, checkpoints)
    rows.sort(key=lambda row: -(row[f"acc@{last}"] or 0.0))
    by_row = {(labels[r.run_id], network_label(r)): [] for r in runs}
    for r in runs:
        by_row[(labels[r.run_id], network_label(r))].append(r)
    bound = next((row[f"acc@{last}"] for row in rows if row["method"] == "joint"), None)
    heads = ["setting", "runs", "blackouts"] + [f"acc after {k}" for k in checkpoints] + \
        [f"95% interval, {last}", "of joint", f"new-task acc at {last}", "tasks retained", "dead units", "kept"]
    print("| " + " | ".join(heads) + " |")
    print("|" + " --- |" * len(heads))
    for row in rows[: a.top or None]:
        group = by_row[(row["setting"], row["width"])]
        name = row["setting"] + (" xdg" if "xdg" in row["width"] else "")
        causes = ", ".join(f"{n} {c}" for c, n in row["causes"].items())
        accs = [f"{row[f'acc@{k}']:.3f}{'†' if row[f'acc@{k}_after_blackout'] else ''}"
                if row[f"acc@{k}"] is not None else "–" for k in checkpoints]
        ci = interval([v for v, _ in (avg_after(r, last) for r in group) if v is not None])
        share = f"{row[f'acc@{last}'] / bound:.2f}" if bound and row[f"acc@{last}"] is not None else "–"
        cells = [name, str(row["runs"]), f"{row['runs'] - row['censored']}" + (f" ({causes})" if causes else "")] + accs + [
            ci, share, f"{row['new_task_acc']:.3f}" if row["new_task_acc"] is not None else "–", f"{row['retained']:.1f}",
            f"{row['dead_units']:.3f}" if row["dead_units"] is not None else "–", kept(row).replace("-", "–")]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
