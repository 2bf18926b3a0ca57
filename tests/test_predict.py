"""The two blackout rules on hand-written diagnostics."""


from blackout.study.predict import REACH_LIMIT, agreement, predictor_agreement, reach_rule, stability_agreement
from tests.factory import make_result


def run(blackout, stability, reach, seed=0, applies=True):
    diags = [{"task": i + 1, "stability": s, "unstable_reach": r} for i, (s, r) in enumerate(zip(stability, reach))]
    rows = [[0.9] * (i + 1) for i in range(len(diags))]
    return make_result(rows, tasks=8, blackout=blackout, cause="diverged" if blackout else None, diagnostics=diags,
                       seed=seed, stability_applies=applies)


def test_the_reach_rule_waits_for_a_grown_weight_in_reach():
    big = REACH_LIMIT * 10
    plateau = run(6, [1.5, 2.03, 2.04, 2.04, 2.05, 2.05], [None, 0.01, 5.0, None, None, big])
    assert reach_rule(plateau) == 6  # silent growth through tasks 3-5, reached at task 6
    a = predictor_agreement([plateau])
    s = stability_agreement([plateau])
    assert (a["n_exact"], a["share_within_one"], a["warn_lead"]) == (1, 1.0, 0)
    assert (s["runs"][0]["first_unstable"], s["share_within_one"], s["warn_lead"]) == (2, 0.0, 4)


def test_agreement_counts_leaves_out_and_compares_only_both():
    never = run(None, [0.5, 0.7, 0.9], [None, None, None], seed=1)
    left = run(3, [2.5, 2.5, 2.5], [None, 99.0, 99.0], seed=2, applies=False)  # e.g. a proximal step
    early = run(None, [1.0, 2.1, 2.1], [None, 50.0, None], seed=3)  # warned, never blacked out in 3 tasks
    a = predictor_agreement([never, left, early])
    assert (a["n_runs"], a["n_left_out"], a["n_compared"], a["n_neither"], a["n_only_unstable"]) == (2, 1, 0, 1, 1)
    assert a["share_within_one"] is None and a["warn_lead"] is None
    custom = agreement([never, early], rule=lambda r: 2)
    assert custom["n_only_unstable"] == 2
