"""The method ranking on hand-written results."""

import pytest

from blackout.compare import method_table, setting_label


def result(method, seed, acc, blackout=None, cause=None, width=50, **m):
    return {"config": {"method": {"method": method, "lam": 15.0, **m}, "model": {"hidden": [width]}},
            "seed": seed, "acc": acc, "tasks_run": len(acc), "blackout": {"task": blackout, "cause": cause}}


def lower(rows):
    """A lower-triangular matrix from the rows' seen parts."""
    n = len(rows)
    return [row + [None] * (n - len(row)) for row in rows]


def test_ranking_counts_censored_runs_at_their_bound_and_flags_dead_accuracy():
    ewc = [result("ewc", 0, lower([[0.9], [0.8, 0.9], [0.1, 0.1, 0.1]]), 3, "diverged"),
           result("ewc", 1, lower([[0.9], [0.1, 0.1]]), 2, "diverged")]
    sgd = [result("sgd", 0, lower([[0.9], [0.5, 0.9], [0.3, 0.5, 0.9]]))]
    rows = method_table(ewc + sgd, checkpoints=(2, 3))
    assert [r["setting"] for r in rows] == ["sgd", "ewc λ=15"]
    s, e = rows
    assert s["tasks_learned"] == 3 and s["blackout_is_bound"] and s["censored"] == 1
    assert s["acc@3"] == pytest.approx((0.3 + 0.5 + 0.9) / 3) and not s["acc@3_after_blackout"]
    assert e["tasks_learned"] == pytest.approx(((3 - 1) + (2 - 1)) / 2) and e["causes"] == {"diverged": 2}
    assert e["acc@2"] == pytest.approx(((0.8 + 0.9) / 2 + 0.1) / 2)
    # seed 1 died at task 2; after task 3 it counts with its blackout row
    assert e["acc@3"] == pytest.approx((0.1 + 0.1) / 2) and e["acc@3_after_blackout"]


def test_labels_name_only_the_settings_a_method_uses():
    assert setting_label(result("sgd", 0, [[1.0]])) == "sgd"
    assert setting_label(result("online-ewc", 0, [[1.0]], gamma=0.9)) == "online-ewc λ=15 gamma=0.9"
    assert setting_label(result("ewc-l1", 0, [[1.0]], prox=True)) == "ewc-l1 λ=15 prox=True"
    assert setting_label(result("replay", 0, [[1.0]], memory=200)) == "replay memory=200"
