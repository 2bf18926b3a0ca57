"""The capacity law: how the blackout task grows with network size.

The seed study reported that 50 hidden units black out at task 5 and 100 units at task 10 and
called the relation linear. This module tests that claim on run results instead of assuming it:
per group of runs that differ only in capacity and seed, it fits a line and a power law to the
blackout task against capacity (width, depth or parameter count), with runs that never blacked
out kept as right-censored (``tobit``), and compares the laws by AIC.

``analyze`` returns an ``analysis.Analysis``, whose ``to_dict`` is its JSON form.
"""

from __future__ import annotations

import math
from typing import Any

from ..experiment.result import Result, jsonable
from .analysis import Analysis, Fit, Group, Interval, Point
from .predict import forecast_check, predictor_agreement, stability_agreement
from .tobit import fit_linear, fit_power, summarize

AXES = ("width", "depth", "params")

# Blackout tasks are integers: a residual spread below the rounding error of an integer
# (standard deviation 1/sqrt(12)) is not information, and without a floor a perfect fit has
# an infinite likelihood, which would make the AIC comparison meaningless.
TASK_SIGMA_MIN = 1.0 / math.sqrt(12.0)


def capacity_of(r: Result, axis: str) -> float:
    """The run's capacity along ``axis``: "width" (first hidden width), "depth" (hidden layers)
    or "params" (trainable parameters)."""
    if axis == "width":
        return float(r.hidden[0])
    if axis == "depth":
        return float(len(r.hidden))
    if axis == "params":
        return float(r.n_params)
    raise ValueError(f"axis: expected one of {', '.join(AXES)}, got {axis!r}")


def _frozen(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    return v


def flat_config(r: Result) -> dict[str, Any]:
    return {k: v for section in r.config.values() if isinstance(section, dict) for k, v in section.items()}


def group_key(r: Result, axis: str) -> tuple:
    """The settings that must match for runs to lie on one capacity curve.

    All settings except the capacity axis ("hidden" and "channels" for width and params, "hidden"
    for depth) and "seed" (seeds are the replicates). Because "hidden" holds both width and depth,
    the other of the two is added back ("depth" for the width axis, "width" for the depth axis),
    so a width curve never mixes depths; the data split is added too, so it never mixes data sets.
    """
    if axis not in AXES:
        raise ValueError(f"axis: expected one of {', '.join(AXES)}, got {axis!r}")
    drop = {"seed", "hidden"} | ({"channels"} if axis in ("width", "params") else set())
    items = {k: _frozen(v) for k, v in flat_config(r).items() if k not in drop}
    items["split"] = r.split  # the same settings on other images are another curve
    if axis == "width":
        items["depth"] = len(r.hidden)
    elif axis == "depth":
        items["width"] = r.hidden[0]
    return tuple(sorted(items.items(), key=lambda kv: kv[0]))


def outcome(r: Result) -> tuple[float, bool]:
    """(blackout task, censored): a run without blackout is censored at tasks_run + 1."""
    if r.verdict.task is None:
        return float(r.tasks_run + 1), True
    return float(r.verdict.task), False


def fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:g}"
    if isinstance(v, (tuple, list)):
        return ",".join(fmt(a) for a in v)
    return str(v)


def _sort_key(v: Any) -> tuple:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, fmt(v))


def analyze(results: list[Result], axis: str = "width", n_boot: int = 1000, seed: int = 0) -> Analysis:
    """Fit the capacity law separately for each group of runs that differ only in capacity and seed.

    Each group carries a label of the settings that differ between groups (in config order,
    e.g. "method=ewc lam=15"; "all runs" if there is one group), its points (censored runs kept
    at their bound and flagged), a per-capacity summary, the linear and power fits and which has
    the lower AIC (``better``: "linear", "power", "tie" or None if a fit failed; ``delta_aic`` =
    |difference|, below 2 it is no real evidence either way). Sigma is floored at 1/sqrt(12)
    because blackout tasks are integers. Runs that never learned a task are left out: they did
    not black out after learning. ``stability`` is ``predict.stability_agreement`` over all runs,
    ``predictor`` the drift rule's, ``forecast`` the forecast against the truth (``predict.forecast_check``).
    """
    if axis not in AXES:
        raise ValueError(f"axis: expected one of {', '.join(AXES)}, got {axis!r}")
    if n_boot < 1:
        raise ValueError(f"bootstrap: expected at least 1 resample, got {n_boot}")
    learned = [r for r in results if r.verdict.learned]
    groups: dict[tuple, list[Result]] = {}
    for r in learned:
        groups.setdefault(group_key(r, axis), []).append(r)
    order: dict[str, int] = {}
    for r in learned:
        for k in flat_config(r):
            order.setdefault(k, len(order))
    names = sorted({k for key in groups for k, _ in key}, key=lambda k: (order.get(k, len(order)), k))
    # a setting only some groups have (a method's own) varies if those groups disagree on it
    varying = [n for n in names if len({dict(key)[n] for key in groups if n in dict(key)}) > 1]

    out_groups: list[dict[str, Any]] = []
    for key, runs in groups.items():
        settings = dict(key)
        label = " ".join(f"{n}={fmt(settings[n])}" for n in varying if n in settings) or "all runs"
        points: list[dict[str, Any]] = []
        for r in runs:
            task, cens = outcome(r)
            points.append(
                {
                    "x": capacity_of(r, axis),
                    "y": task,
                    "censored": cens,
                    "seed": r.seed,
                    "run_id": r.run_id,
                    "cause": r.verdict.cause,
                }
            )
        points.sort(key=lambda p: (p["x"], p["seed"], str(p["run_id"])))
        x, y, c = ([p[k] for p in points] for k in ("x", "y", "censored"))
        lin = fit_linear(x, y, c, n_boot=n_boot, seed=seed, sigma_min=TASK_SIGMA_MIN)
        pw = fit_power(x, y, c, n_boot=n_boot, seed=seed, sigma_min=TASK_SIGMA_MIN)
        better = delta = None
        if lin["aic"] is not None and pw["aic"] is not None:
            delta = abs(lin["aic"] - pw["aic"])
            better = "tie" if delta < 1e-6 else "linear" if lin["aic"] < pw["aic"] else "power"
        out_groups.append(
            {
                "label": label,
                "settings": settings,
                "n": len(points),
                "n_censored": int(sum(c)),
                "points": points,
                "summary": summarize(x, y, c),
                "linear": lin,
                "power": pw,
                "better": better,
                "delta_aic": delta,
            }
        )
    out_groups.sort(key=lambda g: tuple(_sort_key(g["settings"].get(n)) for n in varying))
    typed = [
        Group(
            g["label"],
            jsonable(g["settings"]),
            [Point(**p) for p in g["points"]],
            [Interval(**row) for row in jsonable(g["summary"])],
            Fit.of("linear", jsonable(g["linear"])),
            Fit.of("power", jsonable(g["power"])),
            g["better"],
            g["delta_aic"],
        )
        for g in out_groups
    ]
    return Analysis(
        axis,
        len(results),
        len(results) - len(learned),
        varying,
        TASK_SIGMA_MIN,
        typed,
        stability_agreement(results),
        predictor_agreement(results),
        forecast_check(results),
        data=sorted({r.data_label for r in results}),
    )
