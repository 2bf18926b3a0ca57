"""The two blackout rules on hand-written diagnostics."""

from blackout.study.predict import DRIFT_LIMIT, S_LIMIT, agreement, drift_rule, predictor_agreement, stability_agreement
from tests.factory import make_result


def run(blackout, stability, drift, seed=0, applies=True):
    diags = [{"task": i + 1, "stability": s, "unstable_drift": d} for i, (s, d) in enumerate(zip(stability, drift))]
    rows = [[0.9] * (i + 1) for i in range(len(diags))]
    return make_result(
        rows,
        tasks=8,
        blackout=blackout,
        cause="diverged" if blackout else None,
        diagnostics=diags,
        seed=seed,
        stability_applies=applies,
    )


def test_the_drift_rule_waits_for_silent_growth_or_a_steep_instability():
    plateau = run(6, [1.5, 2.03, 2.04, 2.04, 2.05, 2.05], [None, 10.0, 1e5, DRIFT_LIMIT * 10, None, None])
    assert drift_rule(plateau) == 6  # task 5 starts with a weight grown past the limit: blackout expected at 6
    steep = run(4, [1.0, 1.5, S_LIMIT + 0.1, 3.0], [None, None, 0.1, None])
    assert drift_rule(steep) == 4  # task 3 trains past the steep limit
    a = predictor_agreement([plateau, steep])
    s = stability_agreement([plateau, steep])
    assert (a.n_exact, a.share_within_one, a.share_right, a.warn_lead) == (2, 1.0, 1.0, 1)
    assert (s.runs[0].first_unstable, s.share_within_one, s.warn_lead) == (2, 0.5, 2.5)


def test_agreement_counts_leaves_out_and_compares_only_both():
    never = run(None, [0.5, 0.7, 0.9], [None, None, None], seed=1)
    left = run(3, [2.5, 2.5, 2.5], [None, 1e20, 1e20], seed=2, applies=False)  # e.g. a proximal step
    early = run(None, [1.0, 2.5, 2.5], [None, 50.0, None], seed=3)  # warned, never blacked out in 3 tasks
    a = predictor_agreement([never, left, early])
    assert (a.n_runs, a.n_left_out, a.n_compared, a.n_neither, a.n_only_unstable) == (2, 1, 0, 1, 1)
    assert a.share_within_one is None and a.warn_lead is None and a.share_right == 0.5
    custom = agreement([never, early], rule=lambda r: 2)
    assert custom.n_only_unstable == 2
