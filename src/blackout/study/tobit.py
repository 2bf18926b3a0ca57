"""Censored regression (the Tobit model) and the small statistics the capacity law needs.

Runs that never blacked out within their task budget are right-censored: their blackout task is
only known to be at least ``tasks_run + 1``. Dropping them keeps only the early failures of large
networks and flattens any law, so the fits here are by maximum likelihood with Gaussian errors and
censored observations (Tobin 1958, "Estimation of relationships for limited dependent variables",
Econometrica 26:24-36), with percentile-bootstrap intervals. Pure functions of arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from ..experiment.result import finite_or_none

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _nll(mu: np.ndarray, dmu: np.ndarray, log_sigma: float, y: np.ndarray, cens: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative Tobit log-likelihood and its gradient in (mean parameters..., log sigma).

    Uncensored y contribute log phi(z)/sigma, censored bounds c contribute
    log P(Y >= c) = log(1 - Phi((c - mu)/sigma)).
    """
    sigma = math.exp(log_sigma)
    z = (y - mu) / sigma
    u = ~cens
    ll = -0.5 * np.sum(z[u] ** 2) - u.sum() * (_LOG_SQRT_2PI + log_sigma)
    d_mu = np.where(u, z / sigma, 0.0)
    d_ls = float(np.sum(z[u] ** 2) - u.sum())
    if cens.any():
        zc = z[cens]
        log_tail = special.log_ndtr(-zc)
        ll += float(np.sum(log_tail))
        mills = np.exp(-0.5 * zc**2 - _LOG_SQRT_2PI - log_tail)
        d_mu[cens] = mills / sigma
        d_ls += float(np.sum(mills * zc))
    grad = np.concatenate([dmu.T @ d_mu, [d_ls]])
    return -float(ll), -grad


def _minimize(fun, x0: np.ndarray, bounds) -> tuple[np.ndarray, float, bool, str]:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _minimize_quiet(fun, x0, bounds)


def _minimize_quiet(fun, x0: np.ndarray, bounds) -> tuple[np.ndarray, float, bool, str]:
    res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
    if res.success:
        return res.x, float(res.fun), True, ""
    res2 = optimize.minimize(lambda p: fun(p)[0], res.x, method="Nelder-Mead", bounds=bounds,
                             options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    best = res2 if res2.fun <= res.fun else res
    return best.x, float(best.fun), bool(res2.success), "" if res2.success else f"optimizer: {res.message}"


def _line(x: np.ndarray, y: np.ndarray, cens: np.ndarray, sigma_min: float) -> dict[str, Any]:
    """Tobit line y = a + b x; closed-form OLS (sigma by maximum likelihood) when nothing is censored."""
    mx, sx = float(x.mean()), float(x.std()) or 1.0
    my, sy = float(y.mean()), float(y.std()) or 1.0
    xs, ys = (x - mx) / sx, (y - my) / sy
    floor = max(sigma_min, 1e-9 * sy) / sy
    b0, a0 = np.polyfit(xs, ys, 1)
    s0 = max(float(np.sqrt(np.mean((ys - a0 - b0 * xs) ** 2))), floor)
    if not cens.any():
        a_s, b_s, s_s, ok, msg = a0, b0, s0, True, ""
    else:
        design = np.column_stack([np.ones_like(xs), xs])

        def fun(p):
            return _nll(p[0] + p[1] * xs, design, p[2], ys, cens)

        p, _, ok, msg = _minimize(fun, np.array([a0, b0, math.log(s0)]), [(None, None), (None, None), (math.log(floor), None)])
        a_s, b_s, s_s = float(p[0]), float(p[1]), math.exp(p[2])
    b = float(b_s) * sy / sx
    a = my + sy * float(a_s) - b * mx
    sigma = s_s * sy
    ll = -_nll(a + b * x, np.zeros((len(x), 2)), math.log(sigma), y, cens)[0]
    return {"a": a, "b": b, "sigma": sigma, "loglik": ll, "converged": ok, "message": msg}


def _power_y(x: np.ndarray, y: np.ndarray, cens: np.ndarray, k0: float, lc0: float, sigma_min: float) -> dict[str, Any]:
    """Tobit power law y = c x^k with Gaussian errors on the y scale, started from the log-log fit."""
    lx0 = float(np.mean(np.log(x)))
    lxc = np.log(x) - lx0
    sy = float(np.mean(y))
    yy = y / sy
    floor = max(sigma_min, 1e-9 * sy) / sy
    lc_start = lc0 + k0 * lx0 - math.log(sy)
    mu0 = np.exp(lc_start + k0 * lxc)
    s0 = max(float(np.sqrt(np.mean((yy - mu0) ** 2))), floor)

    def fun(p):
        mu = np.exp(p[0] + p[1] * lxc)
        return _nll(mu, np.column_stack([mu, mu * lxc]), p[2], yy, cens)

    p, _, ok, msg = _minimize(fun, np.array([lc_start, k0, math.log(s0)]), [(-50, 50), (-20, 20), (math.log(floor), None)])
    k = float(p[1])
    coef = math.exp(float(p[0]) + math.log(sy) - k * lx0)
    sigma = math.exp(float(p[2])) * sy
    ll = -_nll(coef * x**k, np.zeros((len(x), 2)), math.log(sigma), y, cens)[0]
    return {"coef": coef, "exponent": k, "sigma": sigma, "loglik": ll, "converged": ok, "message": msg}


# -- fits -----------------------------------------------------------------------------------


def _arrays(x, y, censored) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    c = np.zeros(len(y), dtype=bool) if censored is None else np.asarray(censored, dtype=bool).ravel()
    if not (len(x) == len(y) == len(c)):
        raise ValueError(f"x, y and censored differ in length ({len(x)}, {len(y)}, {len(c)})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    return x, y, c


def _degenerate(x: np.ndarray, c: np.ndarray) -> str:
    # two sizes always fit a line exactly: a law needs a third to be tested at all
    if len(np.unique(x)) < 3:
        return f"need at least 3 distinct x values, got {len(np.unique(x))}"
    if (~c).sum() < 2:
        return f"need at least 2 uncensored points, got {int((~c).sum())}"
    if len(np.unique(x[~c])) < 2:
        return "the uncensored points share one x value, so the slope is not identified"
    return ""


def _r2(y: np.ndarray, fit: np.ndarray) -> float | None:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return None
    return 1.0 - float(np.sum((y - fit) ** 2)) / ss_tot


def _bootstrap(x, y, c, n_boot: int, seed: int, level: float, stat) -> tuple[list[float] | None, int]:
    """Percentile interval of ``stat`` over resamples of the points (with replacement)."""
    if n_boot <= 0:
        return None, 0
    rng = np.random.default_rng(seed)
    n = len(x)
    values = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        if _degenerate(x[i], c[i]):
            continue
        v = stat(x[i], y[i], c[i])
        if v is not None and math.isfinite(v):
            values.append(v)
    if len(values) < 2:
        return None, len(values)
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)], len(values)


def _aic(loglik: float, k: int = 3) -> float | None:
    v = 2 * k - 2 * loglik
    return float(v) if math.isfinite(v) else None


def fit_linear(x, y, censored, n_boot: int = 1000, seed: int = 0, level: float = 0.95, sigma_min: float = 0.0) -> dict:
    """Fit y = intercept + slope x, treating censored y as lower bounds (Tobit, Tobin 1958).

    Maximises the Gaussian likelihood in which an uncensored point contributes its density and
    a censored bound c contributes log(1 - Phi((c - a - b x)/sigma)), starting from OLS on all
    points. With nothing censored this is exactly OLS (sigma is then the maximum-likelihood
    sqrt(SS_res/n)). ``r2`` is computed on the uncensored points only, against the fitted line,
    since a censored bound is not an observed value. ``slope_ci`` is a percentile bootstrap
    interval over resampled points (seeded). ``aic`` = 6 - 2 log L with the same Gaussian
    y-scale likelihood as ``fit_power``'s, so the two are comparable. ``sigma_min`` floors sigma
    (``analyze`` uses 1/sqrt(12), the rounding error of integer task numbers). Degenerate input
    gives ``ok=False`` and a ``reason`` instead of raising.
    """
    x, y, c = _arrays(x, y, censored)
    out: dict[str, Any] = {"slope": None, "intercept": None, "sigma": None, "r2": None, "slope_ci": None,
                           "aic": None, "loglik": None, "n": int(len(x)), "n_censored": int(c.sum()),
                           "n_boot": 0, "method": "tobit" if c.any() else "ols", "ok": False, "reason": ""}
    reason = _degenerate(x, c)
    if reason:
        out["reason"] = reason
        return out
    fit = _line(x, y, c, sigma_min)
    u = ~c
    ci, nb = _bootstrap(x, y, c, n_boot, seed, level, lambda xb, yb, cb: _line(xb, yb, cb, sigma_min)["b"])
    out.update(slope=fit["b"], intercept=fit["a"], sigma=fit["sigma"], r2=_r2(y[u], fit["a"] + fit["b"] * x[u]),
               slope_ci=ci, aic=_aic(fit["loglik"]), loglik=finite_or_none(fit["loglik"]), n_boot=nb,
               ok=bool(fit["converged"]), reason=fit["message"])
    return out


def fit_power(x, y, censored, n_boot: int = 1000, seed: int = 0, level: float = 0.95, sigma_min: float = 0.0) -> dict:
    """Fit y = coef * x^exponent, treating censored y as lower bounds (Tobit, Tobin 1958).

    ``exponent``, ``coef``, ``sigma`` (log scale) and ``exponent_ci`` come from a Tobit line in
    log-log space (the censoring bound is logged too), i.e. multiplicative errors; ``r2`` is on
    the log scale over the uncensored points. The ``aic`` does not come from that fit: it comes
    from refitting the power law with additive Gaussian errors on the y scale (Tobit, started at
    the log-log estimates; reported under ``y_scale``), the same likelihood family and scale as
    ``fit_linear``'s, so the two AICs compare the laws rather than the error models. Both models
    have 3 parameters. Needs x > 0 and y > 0.
    """
    x, y, c = _arrays(x, y, censored)
    out: dict[str, Any] = {"exponent": None, "coef": None, "sigma": None, "r2": None, "exponent_ci": None,
                           "aic": None, "loglik": None, "y_scale": None, "n": int(len(x)), "n_censored": int(c.sum()),
                           "n_boot": 0, "method": "tobit" if c.any() else "ols", "ok": False, "reason": ""}
    reason = _degenerate(x, c)
    if not reason and (np.any(x <= 0) or np.any(y <= 0)):
        reason = "a power law needs x > 0 and y > 0"
    if reason:
        out["reason"] = reason
        return out
    lx, ly = np.log(x), np.log(y)
    fit = _line(lx, ly, c, 0.0)
    u = ~c
    ci, nb = _bootstrap(lx, ly, c, n_boot, seed, level, lambda xb, yb, cb: _line(xb, yb, cb, 0.0)["b"])
    ys = _power_y(x, y, c, fit["b"], fit["a"], sigma_min)
    reasons = [m for m in (fit["message"], "" if ys["converged"] else f"y-scale fit: {ys['message']}") if m]
    out.update(exponent=fit["b"], coef=math.exp(fit["a"]), sigma=fit["sigma"], r2=_r2(ly[u], fit["a"] + fit["b"] * lx[u]),
               exponent_ci=ci, aic=_aic(ys["loglik"]) if ys["converged"] else None,
               loglik=finite_or_none(ys["loglik"]) if ys["converged"] else None,
               y_scale={"coef": ys["coef"], "exponent": ys["exponent"], "sigma": ys["sigma"], "ok": bool(ys["converged"])},
               n_boot=nb, ok=bool(fit["converged"]), reason="; ".join(reasons))
    return out


def summarize(x, y, censored, level: float = 0.95) -> list[dict]:
    """Per distinct x: n, mean and t-interval of the mean over seeds.

    Censored values enter at their bound, so where ``n_censored > 0`` the mean and interval are
    lower bounds (``mean_is_lower_bound``); the per-value ``censored`` flags say which.
    """
    x, y, c = _arrays(x, y, censored)
    rows = []
    for xv in np.unique(x):
        m = x == xv
        v, f = y[m], c[m]
        n = int(m.sum())
        mean = float(v.mean())
        lo = hi = None
        if n >= 2:
            half = float(stats.t.ppf((1 + level) / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
            lo, hi = mean - half, mean + half
        rows.append({"x": float(xv), "n": n, "n_censored": int(f.sum()), "mean": mean, "ci_lo": lo, "ci_hi": hi,
                     "mean_is_lower_bound": bool(f.any()), "values": [float(a) for a in v],
                     "censored": [bool(a) for a in f]})
    return rows


