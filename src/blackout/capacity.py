"""The capacity law: how the blackout task grows with network size.

The seed study reported that 50 hidden units black out at task 5 and 100 units at task 10 and
called the relation linear. This module tests that claim on stored run results (the JSON form of
``blackout.result``) instead of assuming it: it fits a line and a power law to blackout task
against capacity (width, depth or parameter count) and compares them by AIC.

Runs that never blacked out within their task budget are not blackouts and must not be dropped:
dropping them keeps only the early failures of large networks and flattens the law. Such a run
is right-censored: its blackout task is at least ``tasks_run + 1``. Both fits handle this by
maximum likelihood with Gaussian errors and censored observations (the Tobit model, Tobin 1958,
"Estimation of relationships for limited dependent variables", Econometrica 26:24-36).

Everything returned is plain JSON (dicts, lists, floats, ints, strings, None; never NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from .detect import first_unstable

AXES = ("width", "depth", "params")

# Blackout tasks are integers: a residual spread below the rounding error of an integer
# (standard deviation 1/sqrt(12)) is not information, and without a floor a perfect fit has
# an infinite likelihood, which would make the AIC comparison meaningless.
TASK_SIGMA_MIN = 1.0 / math.sqrt(12.0)

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# -- reading results -------------------------------------------------------------------------


def _hidden(result: dict) -> list[int]:
    hidden = result.get("config", {}).get("model", {}).get("hidden")
    if hidden is None:
        raise ValueError(f"run {result.get('run_id')!r}: config.model.hidden is missing")
    hidden = [hidden] if isinstance(hidden, (int, float)) else list(hidden)
    if not hidden:
        raise ValueError(f"run {result.get('run_id')!r}: config.model.hidden is empty")
    return hidden


def capacity_of(result: dict, axis: str) -> float:
    """The run's capacity along ``axis``: "width" (first hidden width), "depth" (hidden layers)
    or "params" (trainable parameters)."""
    if axis == "width":
        return float(_hidden(result)[0])
    if axis == "depth":
        return float(len(_hidden(result)))
    if axis == "params":
        n = result.get("n_params")
        if n is None:
            raise ValueError(f"run {result.get('run_id')!r}: n_params is missing")
        return float(n)
    raise ValueError(f"axis: expected one of {', '.join(AXES)}, got {axis!r}")


def _frozen(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    return v


def _flat_config(result: dict) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in result.get("config", {}).items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def group_key(result: dict, axis: str) -> tuple:
    """The settings that must match for runs to lie on one capacity curve.

    All flat config settings except the capacity axis ("hidden" and "channels" for width and
    params, "hidden" for depth) and "seed" (seeds are the replicates), as a tuple of
    ``(name, value)`` sorted by name, lists turned into tuples. Because "hidden" holds both
    width and depth, the other of the two is added back as a derived setting ("depth" for the
    width axis, "width" for the depth axis) so that a width curve never mixes depths.
    """
    if axis not in AXES:
        raise ValueError(f"axis: expected one of {', '.join(AXES)}, got {axis!r}")
    drop = {"seed", "hidden"} | ({"channels"} if axis in ("width", "params") else set())
    items = {k: _frozen(v) for k, v in _flat_config(result).items() if k not in drop}
    if axis == "width":
        items["depth"] = len(_hidden(result))
    elif axis == "depth":
        items["width"] = _hidden(result)[0]
    return tuple(sorted(items.items(), key=lambda kv: kv[0]))


def _tasks_run(result: dict) -> int:
    if result.get("tasks_run") is not None:
        return int(result["tasks_run"])
    if result.get("acc") is not None:
        return len(result["acc"])
    raise ValueError(f"run {result.get('run_id')!r}: never blacked out and has no tasks_run, so its censoring bound is unknown")


def _outcome(result: dict) -> tuple[float, bool]:
    """(blackout task, censored): a run without blackout is censored at tasks_run + 1."""
    task = (result.get("blackout") or {}).get("task")
    if task is None:
        return float(_tasks_run(result) + 1), True
    return float(task), False


# -- the Tobit likelihood -------------------------------------------------------------------


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


def _used_by(name: str, method: Any) -> bool:
    """Whether a varying setting belongs in a group's label: method settings only where they apply."""
    from .compare import METHOD_KEYS, USES

    return name == "method" or name not in METHOD_KEYS or name in USES.get(method, METHOD_KEYS)


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
               slope_ci=ci, aic=_aic(fit["loglik"]), loglik=_finite(fit["loglik"]), n_boot=nb,
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
               loglik=_finite(ys["loglik"]) if ys["converged"] else None,
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


# -- stability number against blackout -----------------------------------------------------


def stability_agreement(results: list[dict], threshold: float = 2.0) -> dict:
    """Does the stability number predict blackout? Per run, the first task whose stability
    is >= ``threshold`` against the observed blackout task.

    ``share_within_one`` is the share of runs with both defined where they differ by at most
    one task (None if no such run). Runs with only one of the two are counted, not compared:
    a run that turned unstable but never blacked out may simply have been stopped too early.
    ``lead`` is blackout task minus first unstable task.
    """
    runs = []
    for r in results:
        diags = sorted(r.get("diagnostics") or [], key=lambda d: d.get("task", 0))
        finite = [s if isinstance(s, (int, float)) and math.isfinite(s) else None for s in (d.get("stability") for d in diags)]
        index = first_unstable(finite, threshold)  # 1-based position in task order
        first = None if index is None else int(diags[index - 1]["task"])
        bt = (r.get("blackout") or {}).get("task")
        bt = None if bt is None else int(bt)
        both = first is not None and bt is not None
        runs.append({"run_id": r.get("run_id"), "first_unstable": first, "blackout_task": bt,
                     "agree": abs(first - bt) <= 1 if both else None, "lead": bt - first if both else None})
    compared = [r for r in runs if r["agree"] is not None]
    return {
        "threshold": float(threshold),
        "runs": runs,
        "n_runs": len(runs),
        "n_compared": len(compared),
        "n_agree": sum(r["agree"] for r in compared),
        "share_within_one": sum(r["agree"] for r in compared) / len(compared) if compared else None,
        "n_neither": sum(r["first_unstable"] is None and r["blackout_task"] is None for r in runs),
        "n_only_unstable": sum(r["first_unstable"] is not None and r["blackout_task"] is None for r in runs),
        "n_only_blackout": sum(r["first_unstable"] is None and r["blackout_task"] is not None for r in runs),
    }


# -- the whole analysis ---------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:g}"
    if isinstance(v, tuple):
        return ",".join(_fmt(a) for a in v)
    return str(v)


def _sort_key(v: Any) -> tuple:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, _fmt(v))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(a) for k, a in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(a) for a in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return _finite(float(v))
    return v


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def analyze(results: list[dict], axis: str = "width", n_boot: int = 1000, seed: int = 0) -> dict:
    """Fit the capacity law separately for each group of runs that differ only in capacity and seed.

    Each group carries a label of the settings that differ between groups (in config order,
    e.g. "method=ewc lam=15"; "all runs" if there is one group), its points (censored
    runs kept at their bound and flagged), a per-capacity summary, the linear and power fits and
    which has the lower AIC (``better``: "linear", "power", "tie" or None if a fit failed;
    ``delta_aic`` = |difference|, below 2 it is no real evidence either way). Sigma is floored at 1/sqrt(12) because blackout tasks are integers. ``stability`` is
    ``stability_agreement`` over all runs.
    """
    if axis not in AXES:
        raise ValueError(f"axis: expected one of {', '.join(AXES)}, got {axis!r}")
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault(group_key(r, axis), []).append(r)
    order: dict[str, int] = {}
    for r in results:
        for k in _flat_config(r):
            order.setdefault(k, len(order))
    names = sorted({k for key in groups for k, _ in key}, key=lambda k: (order.get(k, len(order)), k))
    varying = [n for n in names if len({dict(key).get(n, "?") for key in groups}) > 1]

    out_groups = []
    for key, runs in groups.items():
        settings = dict(key)
        shown = [n for n in varying if _used_by(n, settings.get("method"))]
        label = " ".join(f"{n}={_fmt(settings.get(n, '?'))}" for n in shown) or "all runs"
        points = []
        for r in runs:
            yv, cens = _outcome(r)
            seed_v = r.get("seed", r.get("config", {}).get("train", {}).get("seed"))
            points.append({"x": capacity_of(r, axis), "y": yv, "censored": cens, "seed": seed_v,
                           "run_id": r.get("run_id"), "cause": (r.get("blackout") or {}).get("cause")})
        points.sort(key=lambda p: (p["x"], p["seed"] if p["seed"] is not None else -1, str(p["run_id"])))
        x = [p["x"] for p in points]
        y = [p["y"] for p in points]
        c = [p["censored"] for p in points]
        lin = fit_linear(x, y, c, n_boot=n_boot, seed=seed, sigma_min=TASK_SIGMA_MIN)
        pw = fit_power(x, y, c, n_boot=n_boot, seed=seed, sigma_min=TASK_SIGMA_MIN)
        better = delta = None
        if lin["aic"] is not None and pw["aic"] is not None:
            delta = abs(lin["aic"] - pw["aic"])
            better = "tie" if delta < 1e-6 else "linear" if lin["aic"] < pw["aic"] else "power"
        out_groups.append({"label": label, "settings": settings, "n": len(points), "n_censored": int(sum(c)),
                           "points": points, "summary": summarize(x, y, c), "linear": lin, "power": pw,
                           "better": better, "delta_aic": delta})
    out_groups.sort(key=lambda g: tuple(_sort_key(g["settings"].get(n)) for n in varying))
    return _jsonable({
        "axis": axis,
        "n_runs": len(results),
        "n_censored": sum(g["n_censored"] for g in out_groups),
        "varying": varying,
        "sigma_min": TASK_SIGMA_MIN,
        "groups": out_groups,
        "stability": stability_agreement(results),
    })
