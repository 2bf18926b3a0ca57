"""The one way tests build results by hand: real configs, hand-written accuracy matrices."""

from __future__ import annotations

from typing import Any

import numpy as np

from blackout import __version__
from blackout.config import RunConfig
from blackout.experiment import metrics
from blackout.experiment.result import Result, Verdict
from blackout.numerics import NUMERICS_VERSION


def make_result(
    acc: Any = None,
    *,
    tasks: int | None = None,
    blackout: int | None = None,
    cause: str | None = None,
    stability: list[float | None] | None = None,
    diagnostics: list[dict] | None = None,
    learned: bool = True,
    retained: list[int] | None = None,
    n_params: int = 0,
    stability_applies: bool | None = None,
    **settings: Any,
) -> Result:
    """A Result whose config comes from ``settings`` (flat names, validated as a run's would be).

    ``acc``: rows of accuracies (None or NaN = not evaluated), padded to ``tasks`` columns;
    default: 3 tasks learned at 0.9 with mild forgetting. ``stability``: one value per row.
    """
    rows = [[0.9], [0.85, 0.9], [0.8, 0.85, 0.9]] if acc is None else acc
    width = tasks or max(len(rows), max((len(r) for r in rows), default=0), 1)
    settings.setdefault("tasks", width)
    cfg = RunConfig.from_flat(settings)
    R = np.full((len(rows), cfg.data.tasks), np.nan)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            R[i, j] = np.nan if v is None else v
    diags = (
        diagnostics
        if diagnostics is not None
        else [
            {
                "task": i + 1,
                "train_loss": 0.5,
                "stability": None if stability is None else stability[i],
                "new_task_acc": float(R[i, i]) if i < R.shape[1] else None,
            }
            for i in range(len(rows))
        ]
    )
    applies = (
        (cfg.method.method in ("ewc", "online-ewc", "l2", "si", "mas") and cfg.train.optimizer == "sgd")
        if stability_applies is None
        else stability_applies
    )
    return Result(
        run_id=cfg.run_id,
        version=__version__,
        numerics=NUMERICS_VERSION,
        seed=cfg.seed,
        config=cfg.to_dict(),
        n_params=n_params,
        data={"source": "test", "note": "", "n_train": 100, "n_test": 20, "chance": [0.1] * cfg.data.tasks},
        acc=R,
        diagnostics=diags,
        metrics=metrics.summary(R),
        verdict=Verdict(
            blackout, cause if blackout else None, learned, retained if retained is not None else [], applies
        ),
        timings={"total": 1.0},
        environment={"python": "3"},
    )


def make_study(path, *, failed: str | None = None):
    """A study folder of two finished runs (seeds 0 and 1, one hidden layer of 16), made without training,
    and a third run failed with the message ``failed`` when given."""
    import json
    from pathlib import Path

    from blackout.study.store import Store

    path = Path(path)
    runs = [make_result(seed=s, hidden=(16,)) for s in range(2)]
    bad = make_result(seed=9, hidden=(16,))
    with Store(path / "results.sqlite", "s") as store:
        store.add([(r.run_id, r.config) for r in runs] + ([(bad.run_id, bad.config)] if failed else []))
        for r in runs:
            store.claim(r.run_id)
            store.finish(r.run_id, r.to_dict(), 1.0)
        if failed:
            store.claim(bad.run_id)
            store.fail(bad.run_id, failed, 2.0)
    (path / "sweep.json").write_text(json.dumps({"study": "s", "specs": []}))
    return path
