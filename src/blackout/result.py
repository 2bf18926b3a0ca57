"""The value a run returns, and its JSON form (the form the store, the results folder and `--json` use).

JSON form (``Result.to_dict()``); task numbers are 1-based, accuracies are fractions in [0, 1]::

    {
      "run_id": "3f2a...",            # RunConfig.run_id
      "version": "0.1.0",              # blackout version that produced it
      "seed": 0,
      "config": {"data": {...}, "model": {...}, "method": {...}, "train": {...}, "blackout": {...}},
      "n_params": 39760,
      "data": {"source": "...", "note": "...", "n_train": 8000, "n_test": 2000, "chance": [0.1, ...]},
      "acc": [[0.97, null, ...], ...], # R[i][j]: accuracy on task j+1 after training task i+1; null = not evaluated
      "diagnostics": [{"task": 1, "train_loss": .., "penalty": .., "fisher_mean": .., "fisher_max": ..,
                       "importance_max": .., "stability": .., "new_task_acc": .., "seconds": ..}, ...],
      "metrics": {"avg_acc": .., "bwt": .., "fwt": .., "forgetting": .., "plasticity": [..]},
      "blackout": {"task": 5 | null, "cause": "collapsed" | "diverged" | null,
                   "retained": 3, "retained_tasks": [1, 2, 4]},
      "tasks_run": 5,                  # rows of acc
      "timings": {"total": .., "data": .., "train": .., "fisher": .., "eval": ..}
    }
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class Result:
    run_id: str
    version: str
    seed: int
    config: dict[str, Any]
    n_params: int
    data: dict[str, Any]
    acc: np.ndarray  # (tasks_run, tasks) float, NaN where not evaluated
    diagnostics: list[dict[str, Any]]
    metrics: dict[str, Any]
    blackout: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def tasks_run(self) -> int:
        return int(self.acc.shape[0])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["acc"] = [[None if math.isnan(v) else float(v) for v in row] for row in self.acc.tolist()]
        d["tasks_run"] = self.tasks_run
        return _finite_or_none(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        acc = np.array([[np.nan if v is None else v for v in row] for row in d["acc"]], dtype=float)
        if acc.size == 0:
            acc = acc.reshape(0, d["config"]["data"]["tasks"])
        keep = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "acc"}
        return cls(acc=acc, **keep)


def _finite_or_none(x: Any) -> Any:
    """JSON has no NaN/inf: a diverged run's losses become null rather than invalid JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite_or_none(v) for v in x]
    return x
