"""Blackout verdicts: pure functions of the accuracy matrix, the chance levels and the divergence flag.

Definition (configurable by ``margin`` and ``retain_frac``): the run blacks out at task t (1-based)
when, after training task t, the weights or the loss are non-finite (cause ``diverged``), or every
task 1..t scores at most its own chance level + ``margin`` although some task had been learned
above it before (cause ``collapsed``): the network has lost the old tasks *and* failed to learn the
new one, unlike ordinary forgetting, where the newest task is still learned. A run that never
learned any task above chance + margin has not blacked out: there was nothing to lose (its
verdict says "never learned"). A task's chance level is the accuracy of always answering its most
frequent class (``Stream.chance``).
"""

from __future__ import annotations

import numpy as np


def _above(R: np.ndarray, chance: np.ndarray, margin: float) -> np.ndarray:
    """Entrywise: learned above chance + margin (False where not evaluated)."""
    R = np.asarray(R, dtype=float)
    floor = np.asarray(chance, dtype=float)[: R.shape[1]] + margin
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(R, nan=-np.inf) > floor


def collapsed(row: np.ndarray, chance: np.ndarray, margin: float) -> bool:
    """Every evaluated task in ``row`` (the tasks seen so far) is at most its chance + margin."""
    return not bool(_above(np.asarray(row, dtype=float)[None], chance, margin).any())


def verdict(R: np.ndarray, chance: np.ndarray, margin: float, diverged_at: int | None = None) -> tuple[int | None, str | None, bool]:
    """(first blackout task, 1-based, or None; its cause; whether any task was ever learned).

    ``diverged_at``: 0-based task during which training became non-finite, if any.
    """
    R = np.asarray(R, dtype=float)
    learned = False
    for i in range(R.shape[0]):
        if diverged_at is not None and i >= diverged_at:
            return diverged_at + 1, "diverged", learned
        seen = R[i, : i + 1]
        if learned and collapsed(seen, chance, margin):
            return i + 1, "collapsed", True
        learned = learned or not collapsed(seen, chance, margin)
    if diverged_at is not None:
        return diverged_at + 1, "diverged", learned
    return None, None, learned


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
