"""The method ranking and its labels on hand-written results."""

import pytest

from blackout.study.compare import checkpoints_for, method_table, network_label, setting_labels
from tests.factory import make_result


def result(method, seed, acc, blackout=None, cause=None, width=50, **m):
    return make_result(acc, tasks=3, blackout=blackout, cause=cause, method=method, seed=seed, hidden=(width,), **m)


def test_ranking_counts_censored_runs_at_their_bound_and_flags_dead_accuracy():
    ewc = [
        result("ewc", 0, [[0.9], [0.8, 0.9], [0.1, 0.1, 0.1]], 3, "diverged"),
        result("ewc", 1, [[0.9], [0.1, 0.1]], 2, "diverged"),
    ]
    sgd = [result("sgd", 0, [[0.9], [0.5, 0.9], [0.3, 0.5, 0.9]], retained=[3])]
    rows = method_table(ewc + sgd, checkpoints=(2, 3))
    assert [r["setting"] for r in rows] == ["sgd", "ewc λ=15"]
    s, e = rows
    assert s["tasks_learned"] == 3 and s["blackout_is_bound"] and s["censored"] == 1
    assert s["acc@3"] == pytest.approx((0.3 + 0.5 + 0.9) / 3) and not s["acc@3_after_blackout"]
    assert s["new_task_acc"] == pytest.approx(0.9) and s["retained"] == 1
    assert e["tasks_learned"] == pytest.approx(((3 - 1) + (2 - 1)) / 2) and e["causes"] == {"diverged": 2}
    assert e["acc@2"] == pytest.approx(((0.8 + 0.9) / 2 + 0.1) / 2)
    # seed 1 died at task 2; after task 3 it counts with its blackout row
    assert e["acc@3"] == pytest.approx((0.1 + 0.1) / 2) and e["acc@3_after_blackout"]
    assert e["new_task_acc"] == pytest.approx((0.1 + 0.1) / 2)  # the last task each seed ran


def test_labels_name_the_strength_and_the_settings_that_vary_within_a_method():
    runs = [
        result("sgd", 0, [[1.0]]),
        result("online-ewc", 0, [[1.0]], lam=5.0, gamma=0.9),
        result("online-ewc", 1, [[1.0]], lam=5.0, gamma=0.5),
        result("ewc-l1", 0, [[1.0]], prox=True),
        result("replay", 0, [[1.0]], memory=200),
        result("replay", 0, [[1.0]], memory=1000),
    ]
    labels = setting_labels(runs)
    assert [labels[r.run_id] for r in runs] == [
        "sgd",
        "online-ewc λ=5 gamma=0.9",
        "online-ewc λ=5 gamma=0.5",
        "ewc-l1 λ=1",
        "replay memory=200",
        "replay memory=1000",
    ]
    assert network_label(result("sgd", 0, [[1.0]], width=64, gating=0.8)) == "64 xdg 0.8"


def test_each_setting_reports_what_it_keeps_after_its_last_task():
    def kept(method, seed, floats, samples, **m):
        diags = [
            {"task": i + 1, "memory_floats": f, "memory_samples": s} for i, (f, s) in enumerate(zip(floats, samples))
        ]
        return result(method, seed, [[0.9], [0.8, 0.9]], diagnostics=diags, **m)

    rows = method_table(
        [
            kept("replay", 0, [7840, 15680], [10, 20], memory=20),
            kept("replay", 1, [7840, 15680], [10, 20], memory=20),
            kept("ewc", 0, [100, 200], [0, 0]),
            kept("ewc", 1, [100, 300], [0, 0]),
            result("sgd", 0, [[0.9], [0.8, 0.9]]),  # recorded nothing: unknown, not zero
        ]
    )
    by = {r["method"]: r for r in rows}
    assert by["replay"]["memory_floats"] == 15680 and by["replay"]["memory_samples"] == 20
    assert by["ewc"]["memory_floats"] == 250 and by["ewc"]["memory_samples"] == 0
    assert by["sgd"]["memory_floats"] is None and by["sgd"]["memory_samples"] is None


@pytest.mark.parametrize(
    ("tasks", "expected"), [(3, (3,)), (10, (10,)), (25, (10, 20)), (30, (10, 20, 30)), (100, (10, 20, 30, 100))]
)
def test_checkpoints_are_those_the_longest_run_reaches(tasks, expected):
    runs = [make_result([[0.9]], tasks=tasks, seed=0), make_result([[0.9]], tasks=min(tasks, 3), seed=1)]
    assert checkpoints_for(runs) == expected
