"""Blackout verdicts: pure functions of the accuracy matrix and the run's divergence flag.

Definition (configurable by ``margin`` and ``retain_frac``): the run blacks out at task t (1-based)
when, after training task t, the weights or the loss are non-finite (cause ``diverged``), or every
task 1..t scores at most its chance level + ``margin`` (cause ``collapsed``): the network has lost
the old tasks *and* failed to learn the new one, unlike ordinary forgetting, where the newest task
is still learned.
"""

from __future__ import annotations

import numpy as np


def collapsed(row: np.ndarray, chance: np.ndarray, margin: float) -> bool:
    """Every evaluated task in ``row`` (the tasks seen so far) is at most chance + margin."""
    row = np.asarray(row, dtype=float)
    return bool(np.all(row <= np.asarray(chance, dtype=float)[: len(row)] + margin))


def verdict(R: np.ndarray, chance: np.ndarray, margin: float, diverged_at: int | None = None) -> tuple[int | None, str | None]:
    """The first blackout task (1-based) and its cause, or (None, None).

    ``diverged_at``: 0-based task during which training became non-finite, if any.
    """
    R = np.asarray(R, dtype=float)
    for i in range(R.shape[0]):
        if diverged_at is not None and i >= diverged_at:
            return diverged_at + 1, "diverged"
        if collapsed(R[i, : i + 1], chance, margin):
            return i + 1, "collapsed"
    if diverged_at is not None:
        return diverged_at + 1, "diverged"
    return None, None


def retained(R: np.ndarray, frac: float, chance: np.ndarray, margin: float) -> list[int]:
    """Tasks (1-based) still at >= ``frac`` x their just-learned accuracy after the last row.

    A task never learned above chance + ``margin`` is not counted: keeping chance is not retention.
    """
    R = np.asarray(R, dtype=float)
    n = R.shape[0]
    if n == 0:
        return []
    last, learned = R[n - 1, :n], np.diag(R[:n, :n])
    floor = np.asarray(chance, dtype=float)[:n] + margin
    return [j + 1 for j in range(n) if learned[j] > floor[j] and last[j] >= frac * learned[j]]


def first_unstable(stability: list[float | None], threshold: float = 2.0) -> int | None:
    """First task (1-based) trained while lr x lambda x max curvature >= ``threshold``."""
    for t, s in enumerate(stability):
        if s is not None and s >= threshold:
            return t + 1
    return None
