import json
import math

import numpy as np
import pytest
from scipy import stats

from blackout.study.capacity import analyze, capacity_of, group_key
from blackout.study.predict import stability_agreement
from blackout.study.tobit import fit_linear, fit_power, summarize
from tests.factory import make_result

WIDTHS = np.repeat([25.0, 50.0, 100.0, 200.0, 300.0, 400.0], 5)  # 5 seeds per width


def run(run_id, hidden, seed, task, tasks_run, method="ewc", lam=15.0, stability=(), n_params=None):
    settings = {"lam": lam} if method != "sgd" else {}
    r = make_result(
        [[0.9] * (i + 1) for i in range(tasks_run)],
        tasks=30,
        blackout=task,
        cause="collapsed",
        hidden=tuple(hidden),
        seed=seed,
        method=method,
        n_params=n_params if n_params is not None else 64 * hidden[0] + 10 * hidden[-1],
        stability=list(stability) + [None] * (tasks_run - len(stability)),
        **settings,
    )
    r.run_id = run_id
    return r


def tobit_loglik(a, b, sigma, x, y, cens):
    """Independent Tobit log-likelihood written with scipy.stats."""
    mu = a + b * x
    return float(
        np.sum(stats.norm.logpdf(y[~cens], mu[~cens], sigma)) + np.sum(stats.norm.logsf(y[cens], mu[cens], sigma))
    )


def test_capacity_of_reads_each_axis():
    r = run("a", [50, 50], 0, 5, 5, n_params=1234)
    assert capacity_of(r, "width") == 50.0
    assert capacity_of(r, "depth") == 2.0
    assert capacity_of(r, "params") == 1234.0
    with pytest.raises(ValueError):
        capacity_of(r, "height")


def test_group_key_ignores_capacity_and_seed_only():
    a = run("a", [50], 0, 5, 5)
    b = run("b", [100], 3, 9, 9)
    c = run("c", [100], 3, 9, 9, lam=100.0)
    assert group_key(a, "width") == group_key(b, "width")
    assert group_key(a, "width") != group_key(c, "width")
    key = dict(group_key(a, "width"))
    assert "hidden" not in key and "channels" not in key and "seed" not in key
    assert key["lam"] == 15.0 and key["depth"] == 1
    names = [k for k, _ in group_key(a, "width")]
    assert names == sorted(names)
    deep = dict(group_key(a, "depth"))
    assert deep["channels"] == (16, 32) and "hidden" not in deep
    # a width curve never mixes depths
    assert group_key(run("d", [50, 50], 0, 5, 5), "width") != group_key(a, "width")
    with pytest.raises(ValueError):
        group_key(a, "height")


def test_uncensored_fit_is_ols():
    rng = np.random.default_rng(1)
    x = WIDTHS
    y = 3.0 + 0.05 * x + rng.normal(0, 2.0, x.size)
    fit = fit_linear(x, y, np.zeros(x.size, bool), n_boot=0)
    slope, intercept = np.polyfit(x, y, 1)
    assert fit["ok"] and fit["method"] == "ols" and fit["n_censored"] == 0
    assert fit["slope"] == pytest.approx(slope, abs=1e-6)
    assert fit["intercept"] == pytest.approx(intercept, abs=1e-6)
    resid = y - (intercept + slope * x)
    assert fit["r2"] == pytest.approx(1 - np.sum(resid**2) / np.sum((y - y.mean()) ** 2), abs=1e-9)
    assert fit["sigma"] == pytest.approx(math.sqrt(np.mean(resid**2)), rel=1e-9)
    assert fit["aic"] == pytest.approx(
        6 - 2 * tobit_loglik(intercept, slope, fit["sigma"], x, y, np.zeros(x.size, bool)), rel=1e-9
    )


def test_planted_linear_law_and_censoring():
    rng = np.random.default_rng(7)
    x = WIDTHS
    y = 2.0 + 0.1 * x + rng.normal(0, 1.5, x.size)
    full = fit_linear(x, y, None, n_boot=300, seed=0)
    lo, hi = full["slope_ci"]
    assert lo < 0.1 < hi

    budget = 30
    cens = y > budget
    clipped = np.where(cens, budget + 1, y)
    assert 5 <= cens.sum() <= 15
    tob = fit_linear(x, clipped, cens, n_boot=300, seed=0)
    naive = np.polyfit(x, clipped, 1)[0]
    assert tob["ok"] and tob["method"] == "tobit" and tob["n_censored"] == int(cens.sum()) and tob["n"] == x.size
    lo, hi = tob["slope_ci"]
    assert lo < 0.1 < hi
    assert abs(tob["slope"] - 0.1) < abs(naive - 0.1)
    assert not (lo < naive < hi)  # ignoring censoring would be detectably biased here

    # the estimate is the maximum of the Tobit likelihood, checked with an independent one
    best = tobit_loglik(tob["intercept"], tob["slope"], tob["sigma"], x, clipped, cens)
    assert tob["loglik"] == pytest.approx(best, rel=1e-9)
    for da, db, ds in [(0.05, 0, 0), (0, 1e-3, 0), (0, 0, 0.05), (-0.05, 0, 0), (0, -1e-3, 0), (0, 0, -0.05)]:
        assert tobit_loglik(tob["intercept"] + da, tob["slope"] + db, tob["sigma"] + ds, x, clipped, cens) < best

    # seeded bootstrap is reproducible
    assert (
        fit_linear(x, clipped, cens, n_boot=50, seed=3)["slope_ci"]
        == fit_linear(x, clipped, cens, n_boot=50, seed=3)["slope_ci"]
    )


def test_planted_power_law():
    x = np.repeat([25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0], 5)
    rng = np.random.default_rng(2)
    y = 0.8 * x**0.5 * np.exp(rng.normal(0, 0.1, x.size))
    pw = fit_power(x, y, None, n_boot=300, seed=0)
    assert pw["ok"]
    lo, hi = pw["exponent_ci"]
    assert lo < 0.5 < hi
    slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
    assert pw["exponent"] == pytest.approx(slope, abs=1e-6)
    assert pw["coef"] == pytest.approx(math.exp(icpt), rel=1e-6)
    lin = fit_linear(x, y, None, n_boot=0)
    assert pw["aic"] < lin["aic"] - 10  # a square root is not a line

    cens = y > 25
    clipped = np.where(cens, 26.0, y)
    assert cens.sum() >= 3
    pwc = fit_power(x, clipped, cens, n_boot=300, seed=0)
    lo, hi = pwc["exponent_ci"]
    assert pwc["ok"] and pwc["n_censored"] == int(cens.sum()) and lo < 0.5 < hi


def test_seed_study_numbers_cannot_test_a_law():
    """The seed's two sizes (50 -> 5, 100 -> 10) fit any two-parameter law exactly: no law is claimed."""
    x = [50, 50, 100, 100]
    y = [5, 5, 10, 10]
    for fit in (
        fit_linear(x, y, None, n_boot=20, sigma_min=1 / math.sqrt(12)),
        fit_power(x, y, None, n_boot=20, sigma_min=1 / math.sqrt(12)),
    ):
        assert not fit["ok"] and fit["reason"] == "need at least 3 distinct x values, got 2"
    # a third size makes both testable, and on exactly proportional data they fit equally well
    x3, y3 = x + [200, 200], y + [20, 20]
    lin = fit_linear(x3, y3, None, n_boot=20, sigma_min=1 / math.sqrt(12))
    pw = fit_power(x3, y3, None, n_boot=20, sigma_min=1 / math.sqrt(12))
    assert lin["slope"] == pytest.approx(0.1) and pw["exponent"] == pytest.approx(1.0)
    assert lin["aic"] == pytest.approx(pw["aic"], abs=1e-6)


@pytest.mark.parametrize(
    "x, y, cens",
    [
        ([100, 100, 100], [5, 6, 7], [0, 0, 0]),  # one distinct x
        ([50, 100, 200], [5, 11, 11], [0, 1, 1]),  # one uncensored point
        ([50, 100, 200], [11, 11, 11], [1, 1, 1]),  # all censored
        ([50, 50, 200], [5, 6, 11], [0, 0, 1]),  # uncensored points share one x
        ([], [], []),
    ],
)
def test_degenerate_inputs_do_not_raise(x, y, cens):
    for fit in (fit_linear(x, y, cens, n_boot=10), fit_power(x, y, cens, n_boot=10)):
        assert fit["ok"] is False and fit["reason"]
        json.dumps(fit, allow_nan=False)


def test_power_needs_positive_values():
    pw = fit_power([0, 1, 2], [1, 2, 3], None, n_boot=0)
    assert not pw["ok"] and "x > 0" in pw["reason"]


def test_summarize_t_interval_and_flags():
    rows = summarize([50, 50, 50, 100], [4, 5, 7, 13], [False, False, True, True])
    assert [r["x"] for r in rows] == [50.0, 100.0]
    r = rows[0]
    v = np.array([4.0, 5.0, 7.0])
    half = stats.t.ppf(0.975, 2) * v.std(ddof=1) / math.sqrt(3)
    assert r["n"] == 3 and r["n_censored"] == 1 and r["mean_is_lower_bound"]
    assert r["mean"] == pytest.approx(16 / 3)
    assert r["ci_lo"] == pytest.approx(16 / 3 - half) and r["ci_hi"] == pytest.approx(16 / 3 + half)
    assert r["censored"] == [False, False, True]
    assert rows[1]["n"] == 1 and rows[1]["ci_lo"] is None and rows[1]["values"] == [13.0]


def test_stability_agreement_by_hand():
    results = [
        run("same", [50], 0, 5, 5, stability=[0.1, 0.5, 1.0, 1.5, 2.5]),  # 5 vs 5: agree
        run("early", [50], 1, 7, 7, stability=[0.5, 1.0, 3.0, None, 4.0, 4.0, 4.0]),  # 3 vs 7: no
        run("close", [50], 2, 6, 6, stability=[0.5, 1.0, 1.5, 1.9, 2.0, 2.2]),  # 5 vs 6: agree
        run("calm", [50], 3, 4, 4, stability=[0.1, 0.1, 0.2, None]),  # never unstable
        run("censored", [50], 4, None, 12, stability=[0.1] * 10 + [2.1, 2.2]),  # unstable, no blackout
        run("nothing", [50], 5, None, 12, stability=[0.1] * 12),
    ]
    out = stability_agreement(results, threshold=2.0)
    by = {r.run_id: r for r in out.runs}
    assert (by["same"].first_unstable, by["same"].blackout_task, by["same"].agree) == (5, 5, True)
    assert (by["early"].first_unstable, by["early"].agree, by["early"].lead) == (3, False, 4)
    assert by["close"].agree is True
    assert by["calm"].first_unstable is None and by["calm"].agree is None
    assert by["censored"].first_unstable == 11 and by["censored"].blackout_task is None
    assert out.n_compared == 3 and out.share_within_one == pytest.approx(2 / 3)
    assert (out.n_neither, out.n_only_unstable, out.n_only_blackout) == (1, 1, 1)
    assert stability_agreement([]).share_within_one is None


def test_analyze_groups_keeps_censored_and_is_json():
    results = []
    for seed in range(2):
        for w, task in [(50, 5), (100, 9 + seed), (200, None)]:
            results.append(run(f"ewc-{w}-{seed}", [w], seed, task, 12 if task is None else task, stability=[3.0] * 4))
        for w, task in [(50, 4 + seed), (100, 6), (200, 11)]:
            results.append(run(f"si-{w}-{seed}", [w], seed, task, task, method="si", lam=1.0))
    out = analyze(results, axis="width", n_boot=50, seed=0)
    d = out.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert (d["n_runs"], d["n_censored"]) == (out.n_runs, out.n_censored) == (12, 2)
    assert (
        [g["label"] for g in d["groups"]] == [g.label for g in out.groups] == ["method=ewc lam=15", "method=si lam=1"]
    )
    ewc = out.groups[0]
    assert ewc.n == 6 and ewc.n_censored == 2 and d["groups"][0]["n_censored"] == 2
    cens = [p for p in ewc.points if p.censored]
    assert len(cens) == 2 and all(p.x == 200.0 and p.y == 13.0 for p in cens)
    assert [s.x for s in ewc.summary] == [50.0, 100.0, 200.0]
    assert ewc.summary[2].mean_is_lower_bound and ewc.summary[2].n_censored == 2
    assert ewc.linear.method == "tobit" and ewc.linear.raw["n_censored"] == 2
    assert ewc.linear.ok and ewc.linear.b == d["groups"][0]["linear"]["slope"] > 0
    assert ewc.better in ("linear", "power", "tie") and ewc.delta_aic is not None
    si = out.groups[1]
    assert si.n_censored == 0 and si.linear.method == "ols"
    assert out.stability.n_runs == 12 and out.stability.n_only_unstable == 2
    assert d["stability"]["n_only_unstable"] == 2 and d["forecast"]["horizons"][0]["k"] == 3
    assert analyze(results[:1], n_boot=10).groups[0].label == "all runs"
    with pytest.raises(ValueError):
        analyze(results, axis="height")


def test_group_labels_name_only_settings_the_method_uses():
    runs = [run(f"e{w}", [w], 0, 5, 5, method="ewc", lam=lam) for w in (25, 50, 100) for lam in (5.0, 15.0)]
    runs += [run(f"s{w}", [w], 0, None, 30, method="sgd", lam=15.0) for w in (25, 50, 100)]
    labels = sorted(g.label for g in analyze(runs, n_boot=10).groups)
    assert labels == ["method=ewc lam=15", "method=ewc lam=5", "method=sgd"]  # sgd has no strength


def test_bootstrap_fits_all_resamples_at_once_as_one_at_a_time_would():
    """Every resample's slope from the batched Newton fit is the maximum of an independent Tobit
    likelihood (scipy.stats), maximised one resample at a time by scipy's Nelder-Mead."""
    from scipy import optimize

    from blackout.study.tobit import _lines, _testable

    rng = np.random.default_rng(5)
    x = WIDTHS
    y = 2.0 + 0.1 * x + rng.normal(0, 1.5, x.size)
    cens = y > 30
    y = np.where(cens, 31.0, y)
    i = rng.integers(0, x.size, (12, x.size))
    keep = _testable(x[i], cens[i])
    assert keep.sum() >= 10 and all(cens[row].any() for row in i[keep])
    batched = _lines(x[i][keep], y[i][keep], cens[i][keep], 0.0)
    for k, row in enumerate(i[keep]):
        xb, yb, cb = x[row], y[row], cens[row]
        b0, a0 = np.polyfit(xb, yb, 1)
        best = optimize.minimize(
            lambda p: -tobit_loglik(p[0], p[1], math.exp(p[2]), xb, yb, cb),
            [a0, b0, 0.5],
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
        )
        assert batched["converged"][k]
        assert batched["b"][k] == pytest.approx(best.x[1], rel=1e-5)
        assert batched["a"][k] == pytest.approx(best.x[0], rel=1e-5, abs=1e-5)
        assert tobit_loglik(batched["a"][k], batched["b"][k], batched["sigma"][k], xb, yb, cb) >= -best.fun - 1e-9


def test_bootstrap_skips_resamples_that_cannot_test_a_law():
    from blackout.study.tobit import _degenerate, _testable

    rng = np.random.default_rng(0)
    x = np.array([50.0, 50.0, 100.0, 200.0, 400.0])
    cens = np.array([False, False, False, True, True])
    i = rng.integers(0, 5, (200, 5))
    assert _testable(x[i], cens[i]).tolist() == [not _degenerate(x[r], cens[r]) for r in i]


def test_bootstrap_slopes_are_the_fits_of_the_seeded_resamples():
    """Each slope is the Tobit fit of one resample drawn from the seed, fitted on its own; the
    interval ``fit_linear`` reports is their percentile interval, so two studies' slopes can be compared."""
    from blackout.study.tobit import _degenerate, bootstrap_slopes

    rng = np.random.default_rng(7)
    x = WIDTHS
    y = 2.0 + 0.1 * x + rng.normal(0, 1.5, x.size)
    cens = y > 30
    y = np.where(cens, 31.0, y)
    slopes = bootstrap_slopes(x, y, cens, n_boot=40, seed=3)
    rows = np.random.default_rng(3).integers(0, x.size, (40, x.size))
    alone = [fit_linear(x[r], y[r], cens[r], n_boot=0)["slope"] for r in rows if not _degenerate(x[r], cens[r])]
    assert len(slopes) == len(alone) >= 30
    assert slopes == pytest.approx(alone, rel=1e-6)
    assert fit_linear(x, y, cens, n_boot=40, seed=3)["slope_ci"] == pytest.approx(np.quantile(slopes, [0.025, 0.975]))
