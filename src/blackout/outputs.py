"""A run's results folder: machine-readable files a researcher can load without blackout.

    result.json       the whole Result (``blackout.result`` documents its fields) plus "environment"
    accuracy.csv      the accuracy matrix: one row per task trained, one column per task, empty = not evaluated
    diagnostics.csv   one row per task: loss, penalty, Fisher statistics, stability number, new-task accuracy
"""

from __future__ import annotations

import csv
import json
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .result import Result

DIAGNOSTIC_FIELDS = ("task", "train_loss", "penalty", "fisher_mean", "fisher_max", "importance_max", "stability",
                     "new_task_acc", "seconds")


def environment() -> dict[str, str]:
    """Versions that can change a run's numbers."""
    env = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("blackout", "torch", "numpy"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = "not installed"
    return env


def write_run_folder(result: Result, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    d = result.to_dict()
    d["environment"] = environment()
    _atomic_write(out / "result.json", json.dumps(d, indent=1))
    with (out / "accuracy.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["after_task"] + [f"task_{j + 1}" for j in range(result.acc.shape[1])])
        for i, row in enumerate(d["acc"]):
            w.writerow([i + 1] + ["" if v is None else f"{v:.6f}" for v in row])
    with (out / "diagnostics.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, DIAGNOSTIC_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in d["diagnostics"])
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
