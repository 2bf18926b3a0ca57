"""Metrics against matrices computed by hand."""

import math

import numpy as np
import pytest

from blackout.experiment import metrics

N = np.nan
R = np.array(
    [
        [0.9, 0.2, 0.1],
        [0.6, 0.8, 0.3],
        [0.5, 0.7, 0.95],
    ]
)
BASE = np.array([0.1, 0.15, 0.05])


def test_average_accuracy():
    assert metrics.average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.95) / 3)


def test_backward_transfer():
    assert metrics.backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)


def test_forward_transfer_uses_the_entry_above_the_diagonal():
    assert metrics.forward_transfer(R, BASE) == pytest.approx(((0.2 - 0.15) + (0.3 - 0.05)) / 2)
    lower = np.where(np.tril(np.ones((3, 3))) > 0, R, N)
    assert math.isnan(metrics.forward_transfer(lower, BASE))
    assert math.isnan(metrics.forward_transfer(R, None))


def test_forgetting_uses_the_best_earlier_accuracy():
    R2 = np.array(
        [
            [0.5, N, N],
            [0.8, 0.9, N],  # task 1 improves after task 2: its best is 0.8, not 0.5
            [0.4, 0.6, 0.9],
        ]
    )
    assert metrics.forgetting(R2) == pytest.approx(((0.8 - 0.4) + (0.9 - 0.6)) / 2)


def test_partial_run_counts_only_tasks_trained():
    part = np.array([[0.9, N, N, N], [0.7, 0.85, N, N]])
    assert metrics.average_accuracy(part) == pytest.approx((0.7 + 0.85) / 2)
    assert metrics.plasticity(part) == [0.9, 0.85]
    one = np.array([[0.9, N]])
    assert math.isnan(metrics.backward_transfer(one)) and math.isnan(metrics.forgetting(one))
