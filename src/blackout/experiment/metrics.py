"""Continual-learning metrics as pure functions of the accuracy matrix.

``R`` has shape (n, T): R[i, j] is the test accuracy on task j after training tasks 0..i; NaN where
not evaluated. Only the n tasks trained so far count (the square block R[:n, :n]).
"""

from __future__ import annotations

import numpy as np


def _square(R: np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    n = R.shape[0]
    return R[:n, :n]


def average_accuracy(R: np.ndarray) -> float:
    """ACC: mean accuracy over the tasks seen, after the last one (Lopez-Paz & Ranzato 2017)."""
    S = _square(R)
    return float(np.mean(S[-1])) if S.size else float("nan")


def backward_transfer(R: np.ndarray) -> float:
    """BWT = mean_{j < n-1} (R[n-1, j] - R[j, j]); negative is forgetting. NaN with one task."""
    S = _square(R)
    n = S.shape[0]
    if n < 2:
        return float("nan")
    return float(np.mean(S[-1, :-1] - np.diag(S)[:-1]))


def forward_transfer(R: np.ndarray, baseline: np.ndarray | None) -> float:
    """FWT = mean_{j >= 1} (R[j-1, j] - b_j), b_j the accuracy of the untrained network on task j.

    Needs the entries above the diagonal (evaluation on future tasks) and ``baseline``; NaN otherwise.
    """
    R = np.asarray(R, dtype=float)
    n = R.shape[0]
    if baseline is None or n < 2 or R.shape[1] < n:
        return float("nan")
    ahead = np.array([R[j - 1, j] for j in range(1, n)])
    if np.isnan(ahead).any():
        return float("nan")
    return float(np.mean(ahead - np.asarray(baseline, dtype=float)[1:n]))


def forgetting(R: np.ndarray) -> float:
    """Average forgetting (Chaudhry et al. 2018): mean_{j < n-1} max_{j <= l < n-1} R[l, j] - R[n-1, j].

    Convention: the best accuracy is taken over the rows after task j was learned (l >= j), where
    Chaudhry et al. take every earlier row (l < n-1); the two differ only with ``eval_all``, whose rows
    above the diagonal score a task before it is learned.
    """
    S = _square(R)
    n = S.shape[0]
    if n < 2:
        return float("nan")
    best = np.array([np.nanmax(S[j : n - 1, j]) for j in range(n - 1)])
    return float(np.mean(best - S[-1, :-1]))


def plasticity(R: np.ndarray) -> list[float]:
    """Accuracy on each task just after learning it: the diagonal."""
    return [float(v) for v in np.diag(_square(R))]


def summary(R: np.ndarray, baseline: np.ndarray | None = None) -> dict:
    return {
        "avg_acc": average_accuracy(R),
        "bwt": backward_transfer(R),
        "fwt": forward_transfer(R, baseline),
        "forgetting": forgetting(R),
        "plasticity": plasticity(R),
    }
