"""The same run in two archives: where their numbers part, and by how much (docs/findings.md §4).

    python docs/analysis/same_runs.py ARCHIVE_A ARCHIVE_B [--method gpm]

Pairs the runs of the two archives that share a configuration and seed apart from the task count
(a 30-task study and a 100-task one of the same settings: the first 30 tasks are the same tasks, the
same batches and the same initial weights), and prints per pair the groups each trained in, the
first task whose accuracy row differs (– when the shorter run's rows are bit for bit equal), the
largest difference of one accuracy, and each run's average accuracy after the shorter run's last
task. Equal rows say a run's numbers do not depend on its task count or group; rows that part
measure how far rounding alone (a kernel chosen by the products' shapes) moves a run.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from blackout.api import Study
from blackout.config import RunConfig
from blackout.study.compare import avg_after


def key(r) -> str:
    """The run's whole configuration (settings added since it ran at their defaults), task count and
    data identity aside (runs stored before data ids existed have none; ``same_data`` checks it)."""
    cfg = RunConfig.from_dict(r.config, strict=False).to_dict()
    for section, name in (("data", "tasks"), ("data", "data_id"), ("blackout", "stop_on_blackout")):
        cfg[section].pop(name, None)
    return json.dumps(cfg, sort_keys=True)


def same_data(a, b) -> bool:
    ids = [r.config["data"].get("data_id") for r in (a, b)]
    return None in ids or ids[0] == ids[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--method", default=None, help="only this method's runs")
    args = p.parse_args()
    runs = [[r for r in Study(path).results().runs if args.method in (None, r.method)] for path in (args.a, args.b)]
    others = {key(r): r for r in runs[1]}
    print("| method | seed | groups | first task that differs | largest difference | avg after n (a) | (b) | n |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for a in runs[0]:
        b = others.get(key(a))
        if b is None or not same_data(a, b):
            continue
        n = min(a.tasks_run, b.tasks_run)
        x, y = a.acc[:n, :n], b.acc[:n, :n]
        rows = [t for t in range(n) if not np.array_equal(x[t], y[t], equal_nan=True)]
        gap = np.nanmax(np.abs(x - y)) if rows else 0.0
        groups = f"{a.environment.get('group_size', '?')} / {b.environment.get('group_size', '?')}"
        first = str(rows[0] + 1) if rows else "–"
        print(
            f"| {a.method} | {a.seed} | {groups} | {first} | {gap:.4f} | "
            f"{avg_after(a, n)[0]:.4f} | {avg_after(b, n)[0]:.4f} | {n} |"
        )


if __name__ == "__main__":
    main()
