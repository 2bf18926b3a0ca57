"""Censored regression (the Tobit model) and the small statistics the capacity law needs.

Runs that never blacked out within their task budget are right-censored: their blackout task is
only known to be at least ``tasks_run + 1``. Dropping them keeps only the early failures of large
networks and flattens any law, so the fits here are by maximum likelihood with Gaussian errors and
censored observations (Tobin 1958, "Estimation of relationships for limited dependent variables",
Econometrica 26:24-36), with percentile-bootstrap intervals whose resamples are all fitted at once
(``_lines``: Newton's method on every resample in one array). Pure functions of arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, special

from ..experiment.result import finite_or_none

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _nll(
    mu: np.ndarray, dmu: np.ndarray, log_sigma: float, y: np.ndarray, cens: np.ndarray
) -> tuple[float, np.ndarray]:
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
    res2 = optimize.minimize(
        lambda p: fun(p)[0],
        res.x,
        method="Nelder-Mead",
        bounds=bounds,
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000},
    )
    best = res2 if res2.fun <= res.fun else res
    return best.x, float(best.fun), bool(res2.success), "" if res2.success else f"optimizer: {res.message}"


def _line(x: np.ndarray, y: np.ndarray, cens: np.ndarray, sigma_min: float) -> dict[str, Any]:
    """Tobit line y = a + b x; closed-form OLS (sigma by maximum likelihood) when nothing is censored."""
    fit = _lines(x[None], y[None], cens[None], sigma_min)
    a, b, sigma = float(fit["a"][0]), float(fit["b"][0]), float(fit["sigma"][0])
    ok = bool(fit["converged"][0])
    ll = -_nll(a + b * x, np.zeros((len(x), 2)), math.log(sigma), y, cens)[0]
    return {
        "a": a,
        "b": b,
        "sigma": sigma,
        "loglik": ll,
        "converged": ok,
        "message": "" if ok else "optimizer: Newton's method did not converge",
    }


def _lines(x: np.ndarray, y: np.ndarray, cens: np.ndarray, sigma_min: float) -> dict[str, np.ndarray]:
    """Tobit lines fitted to every row of (B, n) arrays at once: a, b, sigma and converged, each (B,).

    Each row is standardised and started from its OLS line, as one fit would be. Rows with nothing
    censored keep OLS. The others maximise the likelihood in Olsen's parameters (a/sigma, b/sigma,
    1/sigma), in which it is concave (Olsen 1978, Econometrica 46:1211-1215), by Newton's method
    with step halving, all rows in one array; 1/sigma is held at its bound where the sigma floor binds.
    """
    mx, sx = x.mean(1), x.std(1)
    my, sy = y.mean(1), y.std(1)
    sx, sy = np.where(sx > 0, sx, 1.0), np.where(sy > 0, sy, 1.0)
    xs, ys = (x - mx[:, None]) / sx[:, None], (y - my[:, None]) / sy[:, None]
    floor = np.maximum(sigma_min, 1e-9 * sy) / sy
    b0 = (xs * ys).mean(1) / np.maximum((xs * xs).mean(1), 1e-300)  # OLS on centred data
    a0 = ys.mean(1) - b0 * xs.mean(1)
    s0 = np.maximum(np.sqrt(np.mean((ys - a0[:, None] - b0[:, None] * xs) ** 2, axis=1)), floor)
    a, b, s = a0.copy(), b0.copy(), s0.copy()
    converged = np.ones(len(x), dtype=bool)
    todo = cens.any(1)
    if todo.any():
        ga, gb, th, ok = _newton(
            xs[todo], ys[todo], cens[todo], a0[todo] / s0[todo], b0[todo] / s0[todo], 1.0 / s0[todo], 1.0 / floor[todo]
        )
        a[todo], b[todo], s[todo], converged[todo] = ga / th, gb / th, 1.0 / th, ok
    slope = b * sy / sx
    return {"a": my + sy * a - slope * mx, "b": slope, "sigma": s * sy, "converged": converged}


def _olsen(x, y, cens, g, th, derivatives: bool = True):
    """Tobit log-likelihood (constants dropped) per row and, if asked, its gradient and Hessian in
    (g0, g1, theta). An uncensored y adds log theta - (theta y - g0 - g1 x)^2 / 2, a censored bound
    c adds log Phi(g0 + g1 x - theta c).
    """
    u = ~cens
    w = g[:, :1] + g[:, 1:] * x - th[:, None] * y  # uncensored: minus the residual; censored: Phi's argument
    log_phi = special.log_ndtr(np.where(cens, w, 0.0))
    ll = np.sum(np.where(u, -0.5 * w * w, log_phi), axis=1) + u.sum(1) * np.log(th)
    if not derivatives:
        return ll
    lam = np.where(cens, np.exp(-0.5 * w * w - _LOG_SQRT_2PI - log_phi), 0.0)  # phi/Phi, the inverse Mills ratio
    dw = np.where(u, -w, lam)  # d ll / d w
    d2w = np.where(u, -1.0, -lam * (w + lam))  # d2 ll / d w2
    parts = (None, x, -y)  # d w / d (g0, g1, theta); None: 1
    grad = np.stack([dw.sum(1) if p is None else np.einsum("ij,ij->i", dw, p) for p in parts], 1)
    grad[:, 2] += u.sum(1) / th
    hess = np.empty((len(x), 3, 3))
    for i, p in enumerate(parts):
        dp = d2w if p is None else d2w * p
        for j in range(i, 3):
            q = parts[j]
            hess[:, i, j] = hess[:, j, i] = dp.sum(1) if q is None else np.einsum("ij,ij->i", dp, q)
    hess[:, 2, 2] -= u.sum(1) / th**2
    return ll, grad, hess


def _newton(x, y, cens, g0, g1, th, th_max, iters: int = 100) -> tuple[np.ndarray, ...]:
    """Maximise ``_olsen``'s likelihood per row with theta in (0, th_max]: (g0, g1, theta, converged).

    Rows leave once the Newton decrement (the gain the next step promises) is below rounding; a row
    whose step halving finds no gain stops there, converged if that gain was already negligible.
    """
    g, th = np.stack([g0, g1], 1), np.minimum(th, th_max)
    converged = np.zeros(len(x), dtype=bool)
    live = np.arange(len(x))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(iters):
            if not live.size:
                break
            xl, yl, cl, gl, tl, tmax = x[live], y[live], cens[live], g[live], th[live], th_max[live]
            ll, grad, hess = _olsen(xl, yl, cl, gl, tl)
            pinned = (tl >= tmax) & (grad[:, 2] > 0)  # the sigma floor binds: theta stays, Newton in g alone
            hess[pinned, 2, :] = hess[pinned, :, 2] = 0.0
            hess[pinned, 2, 2] = -1.0
            grad[pinned, 2] = 0.0
            step = _solve(hess, -grad)
            gain = np.einsum("ij,ij->i", step, grad)
            bad = ~np.all(np.isfinite(step), 1) | ~(gain > 0)
            step[bad], gain[bad] = grad[bad], np.einsum("ij,ij->i", grad[bad], grad[bad])
            small = gain <= 1e-14 * (1 + np.abs(ll))
            converged[live[small]] = True
            t, trying = np.ones(len(live)), np.flatnonzero(~small)
            for _ in range(50):  # step halving, only on the rows that did not gain
                gt = gl[trying] + t[trying, None] * step[trying, :2]
                tt = np.clip(tl[trying] + t[trying] * step[trying, 2], tl[trying] * 1e-3, tmax[trying])
                up = _olsen(xl[trying], yl[trying], cl[trying], gt, tt, derivatives=False) >= ll[trying]
                g[live[trying[up]]], th[live[trying[up]]] = gt[up], tt[up]
                trying = trying[~up]
                if not trying.size:
                    break
                t[trying] *= 0.5
            stuck = np.zeros(len(live), dtype=bool)
            stuck[trying] = True
            converged[live[stuck]] = gain[stuck] <= 1e-8 * (1 + np.abs(ll[stuck]))
            live = live[~small & ~stuck]
    return g[:, 0], g[:, 1], th, converged


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with a x = b per row; where some ``a`` is singular, the pseudo-inverse's x (NaN for a
    non-finite ``a``, on which the caller falls back to the gradient)."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        ok = np.isfinite(a).all((1, 2)) & np.isfinite(b).all(1)
        out = np.full(b.shape, np.nan)
        out[ok] = np.einsum("ijk,ik->ij", np.linalg.pinv(a[ok]), b[ok])
        return out


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

    p, _, ok, msg = _minimize(
        fun, np.array([lc_start, k0, math.log(s0)]), [(-50, 50), (-20, 20), (math.log(floor), None)]
    )
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


def bootstrap_slopes(x, y, censored, n_boot: int = 1000, seed: int = 0, sigma_min: float = 0.0) -> np.ndarray:
    """The Tobit slope of each of ``n_boot`` resamples of the points (with replacement, seeded).

    Every resample is drawn first and all are fitted at once (``_lines``); a resample on which a
    law cannot be tested (``_degenerate``) or whose fit is not finite is left out. Two studies'
    slopes are compared through these (``docs/analysis/data_amount.py``).
    """
    x, y, c = _arrays(x, y, censored)
    if n_boot <= 0:
        return np.empty(0)
    i = np.random.default_rng(seed).integers(0, len(x), (n_boot, len(x)))
    xb, yb, cb = x[i], y[i], c[i]
    keep = _testable(xb, cb)
    values = _lines(xb[keep], yb[keep], cb[keep], sigma_min)["b"] if keep.any() else np.empty(0)
    return values[np.isfinite(values)]


def _bootstrap(x, y, c, n_boot: int, seed: int, level: float, sigma_min: float) -> tuple[list[float] | None, int]:
    """Percentile interval of the Tobit slope over resamples of the points (``bootstrap_slopes``)."""
    values = bootstrap_slopes(x, y, c, n_boot, seed, sigma_min)
    if len(values) < 2:
        return None, len(values)
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)], len(values)


def _testable(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Per row of (B, n) arrays: ``_degenerate`` finds nothing (3 distinct x, 2 uncensored at 2 distinct x)."""

    def distinct(v: np.ndarray) -> np.ndarray:  # NaN marks a left-out entry
        v = np.sort(v, 1)
        return np.isfinite(v[:, :1]).sum(1) + np.sum((v[:, 1:] != v[:, :-1]) & np.isfinite(v[:, 1:]), 1)

    return (distinct(x) >= 3) & ((~c).sum(1) >= 2) & (distinct(np.where(c, np.nan, x)) >= 2)


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
    out: dict[str, Any] = {
        "slope": None,
        "intercept": None,
        "sigma": None,
        "r2": None,
        "slope_ci": None,
        "aic": None,
        "loglik": None,
        "n": int(len(x)),
        "n_censored": int(c.sum()),
        "n_boot": 0,
        "method": "tobit" if c.any() else "ols",
        "ok": False,
        "reason": "",
    }
    reason = _degenerate(x, c)
    if reason:
        out["reason"] = reason
        return out
    fit = _line(x, y, c, sigma_min)
    u = ~c
    ci, nb = _bootstrap(x, y, c, n_boot, seed, level, sigma_min)
    out.update(
        slope=fit["b"],
        intercept=fit["a"],
        sigma=fit["sigma"],
        r2=_r2(y[u], fit["a"] + fit["b"] * x[u]),
        slope_ci=ci,
        aic=_aic(fit["loglik"]),
        loglik=finite_or_none(fit["loglik"]),
        n_boot=nb,
        ok=bool(fit["converged"]),
        reason=fit["message"],
    )
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
    out: dict[str, Any] = {
        "exponent": None,
        "coef": None,
        "sigma": None,
        "r2": None,
        "exponent_ci": None,
        "aic": None,
        "loglik": None,
        "y_scale": None,
        "n": int(len(x)),
        "n_censored": int(c.sum()),
        "n_boot": 0,
        "method": "tobit" if c.any() else "ols",
        "ok": False,
        "reason": "",
    }
    reason = _degenerate(x, c)
    if not reason and (np.any(x <= 0) or np.any(y <= 0)):
        reason = "a power law needs x > 0 and y > 0"
    if reason:
        out["reason"] = reason
        return out
    lx, ly = np.log(x), np.log(y)
    fit = _line(lx, ly, c, 0.0)
    u = ~c
    ci, nb = _bootstrap(lx, ly, c, n_boot, seed, level, 0.0)
    ys = _power_y(x, y, c, fit["b"], fit["a"], sigma_min)
    reasons = [m for m in (fit["message"], "" if ys["converged"] else f"y-scale fit: {ys['message']}") if m]
    out.update(
        exponent=fit["b"],
        coef=math.exp(fit["a"]),
        sigma=fit["sigma"],
        r2=_r2(ly[u], fit["a"] + fit["b"] * lx[u]),
        exponent_ci=ci,
        aic=_aic(ys["loglik"]) if ys["converged"] else None,
        loglik=finite_or_none(ys["loglik"]) if ys["converged"] else None,
        y_scale={"coef": ys["coef"], "exponent": ys["exponent"], "sigma": ys["sigma"], "ok": bool(ys["converged"])},
        n_boot=nb,
        ok=bool(fit["converged"]),
        reason="; ".join(reasons),
    )
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
            half = float(special.stdtrit(n - 1, (1 + level) / 2) * v.std(ddof=1) / math.sqrt(n))
            lo, hi = mean - half, mean + half
        rows.append(
            {
                "x": float(xv),
                "n": n,
                "n_censored": int(f.sum()),
                "mean": mean,
                "ci_lo": lo,
                "ci_hi": hi,
                "mean_is_lower_bound": bool(f.any()),
                "values": [float(a) for a in v],
                "censored": [bool(a) for a in f],
            }
        )
    return rows
