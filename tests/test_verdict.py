"""Blackout verdicts on constructed matrices, and on real runs (diverging, collapsing, never learning)."""

import numpy as np
import pytest
import torch

from blackout.errors import ConfigError
from blackout.experiment import verdict
from blackout.experiment.data.sources import load_dataset
from blackout.experiment.train import run
from tests.conftest import small

N = np.nan
CH = np.full(4, 0.1)


def test_ordinary_forgetting_is_not_blackout():
    R = np.array([[0.9, N, N], [0.1, 0.9, N], [0.1, 0.1, 0.9]])  # old tasks at chance, new one learned
    assert verdict.verdict(R, CH, 0.1) == (None, None, True)


def test_collapse_when_every_task_is_near_chance_after_learning():
    R = np.array([[0.9, N, N], [0.8, 0.85, N], [0.15, 0.19, 0.2]])
    assert verdict.verdict(R, CH, 0.1) == (3, "collapsed", True)
    assert verdict.verdict(R, CH, 0.05) == (None, None, True)  # 0.19 > 0.15: margin is honoured


def test_each_task_is_judged_against_its_own_chance_level():
    # single-head split: a network stuck on one class scores about 0.5 on the task holding it
    stuck = np.array([[0.95, N, N], [0.5, 0.5, N], [0.5, 0.5, 0.49]])
    assert verdict.verdict(stuck, np.full(3, 0.1), 0.1) == (None, None, True)  # 1/10 chance misses it
    assert verdict.verdict(stuck, np.full(3, 0.5), 0.1) == (2, "collapsed", True)


def test_a_task_never_learned_is_not_a_blackout_after_learning():
    never = np.array([[0.12, N, N], [0.1, 0.15, N], [0.11, 0.1, 0.13]])
    assert verdict.verdict(never, CH, 0.1) == (None, None, False)
    late = np.array([[0.12, N, N], [0.1, 0.9, N], [0.1, 0.1, 0.15]])  # task 2 learned, then everything lost
    assert verdict.verdict(late, CH, 0.1) == (3, "collapsed", True)


def test_divergence_is_reported_at_its_task_even_above_chance():
    R = np.array([[0.9, N], [0.5, 0.6]])
    assert verdict.verdict(R, CH, 0.1, diverged_at=1) == (2, "diverged", True)


def test_retained_needs_learning_above_chance_and_keeping_the_fraction():
    R = np.array([[0.9, N, N], [0.85, 0.12, N], [0.82, 0.12, 0.9]])
    # task 1: 0.82 >= 0.9*0.9 but < 0.95*0.9; task 2 never learned above chance+margin; task 3 just learned
    assert verdict.retained(R, 0.9, CH, 0.1) == [1, 3]
    assert verdict.retained(R, 0.95, CH, 0.1) == [3]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"margin": 0.95}, r"margin: expected chance \+ margin < 1 .*1/10"),
        (
            {"stream": "split", "classes_per_task": 2, "tasks": 3, "margin": 0.5},
            r"margin: expected chance \+ margin < 1 .*1/2",
        ),
        ({"stream": "split", "classes_per_task": 1, "tasks": 3}, "classes_per_task: expected at least 2"),
    ],
)
def test_settings_that_would_call_a_perfect_run_collapsed_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        small(**kw)


def test_real_run_with_huge_lambda_diverges_and_keeps_what_it_measured():
    r = run(small(lam=1e6, lr=0.5, tasks=4))
    assert (r.verdict.task, r.verdict.cause) == (2, "diverged")
    assert r.acc.shape == (2, 4)
    assert r.acc[0, 0] > 0.5  # task 1 was learned before the divergence and is kept in the result
    assert np.isnan(r.diagnostics[1]["train_loss"])
    assert r.diagnostics[1]["stability"] > 2  # the penalty curvature that made the step unstable
    assert r.to_dict()["diagnostics"][1]["train_loss"] is None  # valid JSON, no NaN


def test_real_single_head_split_run_uses_each_task_s_majority_share_as_chance():
    r = run(small(stream="split", tasks=3, classes_per_task=2, method="sgd"))
    chance = r.data["chance"]
    assert all(0.45 <= c <= 0.6 for c in chance)  # two classes per task: about one half, not 1/10


def test_real_run_that_cannot_learn_says_so():
    r = run(small(lr=1e-9, tasks=2, method="sgd"))
    assert r.verdict.task is None and r.verdict.learned is False
    assert "never learned" in r.verdict.text(r.tasks_run)


# -- data under which a verdict means nothing is refused before training --------------------------


def _hand_made(y_train, y_test):
    from blackout.experiment.data.sources import Dataset

    images = lambda n: torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(n))
    return Dataset(
        "digits",
        images(len(y_train)),
        torch.tensor(y_train),
        images(len(y_test)),
        torch.tensor(y_test),
        10,
        "hand-made",
        "",
    )


@pytest.mark.parametrize(
    "kw,y_train,y_test,message",
    [
        ({}, [3] * 40, [3] * 20, r"task 1: its training images hold 1 class \(3\); a verdict needs at least 2"),
        ({}, list(range(10)) * 4, [3] * 20, r"task 1: its test images hold 1 class \(3\)"),
        ({}, list(range(4)), [7], r"task 1: 1 test image; a verdict needs at least 10 per task"),
        ({"stream": "split", "tasks": 2}, [0, 1] * 20, [0, 1] * 9, r"task [12]: [09] test images?;"),
        (
            {},
            list(range(10)) * 4,
            [0] * 18 + [1, 2],
            (
                r"task 1: chance 0.90 \(its most frequent class\) \+ margin 0.1 "
                r">= 1: even a perfect score could not count as learned"
            ),
        ),
        (
            {"margin": 0.3},
            list(range(10)) * 4,
            [0] * 14 + list(range(1, 7)),
            r"task 1: chance 0.70 .* \+ margin 0.3 >= 1",
        ),
    ],
)
def test_data_under_which_a_verdict_means_nothing_is_refused(kw, y_train, y_test, message):
    from blackout.errors import DataError
    from blackout.experiment.data.streams import Streams

    cfg = small(**{"tasks": 1, **kw})
    streams = Streams(cfg.data, _hand_made(y_train, y_test), [0])
    with pytest.raises(DataError, match="hand-made: " + message):
        streams.check(cfg.blackout.margin)


def test_data_a_verdict_can_judge_passes():
    from blackout.experiment.data.streams import Streams

    Streams(small().data, _hand_made(list(range(10)) * 4, list(range(10)) * 2), [0]).check(0.1)
    cfg = small(stream="split", tasks=5, classes_per_task=2, test_limit=10)
    Streams(cfg.data, load_dataset("digits"), [0, 1, 2]).check(0.1)
