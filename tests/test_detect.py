"""Blackout verdicts on constructed matrices, and on a real diverging run."""

import numpy as np

from blackout import detect
from tests.conftest import small
from blackout.train import run

N = np.nan
CH = np.full(4, 0.1)


def test_ordinary_forgetting_is_not_blackout():
    R = np.array([[0.9, N, N], [0.1, 0.9, N], [0.1, 0.1, 0.9]])  # old tasks at chance, new one learned
    assert detect.verdict(R, CH, 0.1) == (None, None)


def test_collapse_when_every_task_is_near_chance():
    R = np.array([[0.9, N, N], [0.8, 0.85, N], [0.15, 0.19, 0.2]])
    assert detect.verdict(R, CH, 0.1) == (3, "collapsed")
    assert detect.verdict(R, CH, 0.05) == (None, None)  # 0.19 > 0.15: margin is honoured


def test_divergence_is_reported_at_its_task_even_above_chance():
    R = np.array([[0.9, N], [0.5, 0.6]])
    assert detect.verdict(R, CH, 0.1, diverged_at=1) == (2, "diverged")


def test_retained_needs_learning_above_chance_and_keeping_the_fraction():
    R = np.array([[0.9, N, N], [0.85, 0.12, N], [0.82, 0.12, 0.9]])
    # task 1: 0.82 >= 0.9*0.9 but < 0.95*0.9; task 2 never learned above chance+margin; task 3 just learned
    assert detect.retained(R, 0.9, CH, 0.1) == [1, 3]
    assert detect.retained(R, 0.95, CH, 0.1) == [3]


def test_first_unstable():
    assert detect.first_unstable([0.0, 0.9, 1.99, 2.0, 5.0]) == 4
    assert detect.first_unstable([0.0, None, 1.0]) is None


def test_real_run_with_huge_lambda_diverges_and_keeps_what_it_measured():
    r = run(small(lam=1e6, lr=0.5, tasks=4))
    assert r.blackout["task"] == 2 and r.blackout["cause"] == "diverged"
    assert r.acc.shape == (2, 4)
    assert r.acc[0, 0] > 0.5  # task 1 was learned before the divergence and is kept in the result
    assert np.isnan(r.diagnostics[1]["train_loss"])
    assert r.diagnostics[1]["stability"] > 2  # the penalty curvature that made the step unstable
    assert r.to_dict()["diagnostics"][1]["train_loss"] is None  # valid JSON, no NaN
