"""Blackout verdicts: pure functions of the accuracy matrix, the chance levels and the divergence flag.

Definition (configurable by ``margin`` and ``retain_frac``): the run blacks out at task t (1-based)
when, after training task t, the weights or the loss are non-finite (cause ``diverged``), or every
task 1..t scores at most its own chance level + ``margin`` although some task had been learned
above it before (cause ``collapsed``): the network has lost the old tasks *and* failed to learn the
new one, unlike ordinary forgetting, where the newest task is still learned. A run that never
learned any task above chance + margin has not blacked out: there was nothing to lose (its
verdict says "never learned"). A task's chance level is the accuracy of always answering its most
frequent class (``chance_level``).
"""

from __future__ import annotations

import numpy as np

MIN_TEST_IMAGES = 10  # per task: accuracy then moves in steps of at most 0.1, the default margin


def chance_level(y_test: np.ndarray) -> float:
    """A task's chance level: the accuracy of always answering the most frequent class of its test labels.

    A network that has collapsed to one output scores this on the task holding that class (about 0.5
    on a two-class split task, about 0.11 on permuted MNIST), so verdicts judge each task against it
    rather than against 1 / outputs. 1 for a task without test labels.
    """
    y_test = np.asarray(y_test)
    return float(np.bincount(y_test).max()) / len(y_test) if len(y_test) else 1.0


def unjudgeable(y_train: np.ndarray, y_test: np.ndarray, margin: float) -> str | None:
    """Why no verdict could mean anything on a task with these training and test labels, or None.

    A task needs at least ``MIN_TEST_IMAGES`` test images, two classes among its training images (with
    one, a constant output solves it) and among its test images (with one, chance is 1 and nothing can
    be learned above it), and chance + ``margin`` < 1, so that a perfect score counts as learned.
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if len(y_test) < MIN_TEST_IMAGES:
        return f"{len(y_test)} test image{'s' if len(y_test) != 1 else ''}; a verdict needs at least {MIN_TEST_IMAGES} per task"
    for part, y in (("training", y_train), ("test", y_test)):
        classes = np.unique(y)
        if len(classes) < 2:
            shown = f" ({int(classes[0])})" if len(classes) else ""
            return f"its {part} images hold {len(classes)} class{shown}; a verdict needs at least 2 in both its training and test images"
    chance = chance_level(y_test)
    if chance + margin >= 1:
        return (
            f"chance {chance:.2f} (its most frequent class) + margin {margin:g} >= 1: even a perfect score could "
            "not count as learned"
        )
    return None


def _above(R: np.ndarray, chance: np.ndarray, margin: float) -> np.ndarray:
    """Entrywise: learned above chance + margin (False where not evaluated)."""
    R = np.asarray(R, dtype=float)
    floor = np.asarray(chance, dtype=float)[: R.shape[1]] + margin
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(R, nan=-np.inf) > floor


def collapsed(row: np.ndarray, chance: np.ndarray, margin: float) -> bool:
    """Every evaluated task in ``row`` (the tasks seen so far) is at most its chance + margin."""
    return not bool(_above(np.asarray(row, dtype=float)[None], chance, margin).any())


def verdict(
    R: np.ndarray, chance: np.ndarray, margin: float, diverged_at: int | None = None
) -> tuple[int | None, str | None, bool]:
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
