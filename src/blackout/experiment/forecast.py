"""The stability rules and the forecast of the blackout task: the one home of the limit 2, the drift
rule and the forecast, read by the run (its diagnostics and warnings), ``analyze`` and the report.

Gradient descent on a quadratic of curvature c is unstable once lr c > ``LIMIT`` (2). The stability
number s = lr x lambda x max_i A_i is recorded for the penalty in force while each task trains. The
first task with s >= 2 is a warning, often some tasks ahead; the run usually survives a while on a
plateau (the unstable weights grow while their units are shut off) and diverges when a silenced unit
comes back on, or at once when s is far above 2. The ``drift`` rule reads both: blackout ``LAG``
task after the first task that starts with an unstable weight already ``DRIFT_LIMIT`` from its anchor
(``unstable_drift`` of the task before) or trains with s >= ``S_LIMIT`` (chosen on seeds 0-4 of the
seed-capacity and stability-grid studies; docs/analysis/predictor.py).

The forecast says it earlier. The penalty's largest importance grows about linearly with the tasks
consolidated, so s_t ~ g (t - 1); the forecast is the task at which that line reaches
``FORECAST_S``, plus ``FORECAST_LAG`` (the plateau), overridden by the drift rule once it fires. Its
two numbers and the interval's width were chosen on seeds 0-4 of the seed-capacity-10 and
stability-grid archives and scored once on the rest (docs/analysis/forecast.py, docs/findings.md).
These functions take plain per-task arrays (None where not measured), so they score archives and
live runs alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

LIMIT = 2.0
DRIFT_LIMIT, S_LIMIT, LAG = 1e12, 2.15, 1  # chosen on the design seeds; see the module doc
FORECAST_S, FORECAST_LAG, FORECAST_SPREAD = 2.4, 1, 0.4  # chosen on the design seeds; see the module doc
FORECAST_FROM = 3  # tasks measured before the forecast is called confident (the horizon it was scored at)
#: methods whose forecast was scored and held: on the keep-learning archives the growth line names the
#: blackout task of online EWC, SI and MAS runs right in 39-67% of runs only, and ewc-capped's s is bounded
FORECAST_METHODS = ("ewc",)

Values = Sequence["float | None"]


def first_unstable(stability: Values, threshold: float = LIMIT) -> int | None:
    """First task (1-based) trained while lr x lambda x max curvature >= ``threshold`` (the plain rule)."""
    for t, s in enumerate(stability):
        if s is not None and s >= threshold:
            return t + 1
    return None


def drift_fires(
    s: float | None, drift_before: float | None, limit: float = DRIFT_LIMIT, s_limit: float = S_LIMIT
) -> str | None:
    """Why the drift rule fires for a task that trains with ``s`` and starts with an unstable weight
    ``drift_before`` from its anchor ("drift" or "steep"), or None."""
    if drift_before is not None and drift_before >= limit:
        return "drift"
    if s is not None and s >= s_limit:
        return "steep"
    return None


def drift_rule(
    stability: Values, drift: Values, limit: float = DRIFT_LIMIT, s_limit: float = S_LIMIT, lag: int = LAG
) -> int | None:
    """``lag`` tasks after the first task t that ``drift_fires`` for; known at task t's start."""
    for t, s in enumerate(stability):
        if drift_fires(s, drift[t - 1] if 0 < t <= len(drift) else None, limit, s_limit):
            return t + 1 + lag
    return None


@dataclass(frozen=True)
class Forecast:
    """The blackout task expected after ``after`` tasks: ``task`` within [``lo``, ``hi``], or None
    ("none within the budget" of ``budget`` tasks); ``how``: "growth" (the line of s) or "drift"."""

    after: int
    task: int | None
    lo: int | None
    hi: int | None
    budget: int
    how: str

    @property
    def confident(self) -> bool:
        return self.how == "drift" or self.after >= FORECAST_FROM

    def text(self) -> str:
        if self.task is None:
            return f"no blackout expected within the budget of {self.budget} tasks"
        return f"blackout expected at task {self.task} (interval {self.lo} to {self.hi})"


def growth(stability: Values) -> float | None:
    """The slope g of s_t ~ g (t - 1) by least squares through the origin, over the tasks t >= 2 measured."""
    pts = [(t, s) for t, s in enumerate(stability) if t >= 1 and s is not None]
    den = sum(u * u for u, _ in pts)
    return sum(u * s for u, s in pts) / den if den else None


def forecast(
    stability: Values,
    drift: Values,
    budget: int,
    s_at: float = FORECAST_S,
    lag: int = FORECAST_LAG,
    spread: float = FORECAST_SPREAD,
) -> Forecast:
    """The forecast after ``len(drift)`` tasks, from the stability numbers of the tasks trained so far and
    the next one (``stability``: one longer than ``drift``, the unstable drift at each task's end).

    The line s_t = g (t - 1) reaches ``s_at`` at t* = 1 + s_at / g; the forecast is ceil(t*) + ``lag``,
    its interval the same with g scaled by 1 +- ``spread``, never before the next task. When the drift
    rule fires for the next task, it names the task (and the interval is that task and the next).
    """
    k = len(drift)
    if len(stability) != k + 1:
        raise ValueError(f"stability: expected {k + 1} values (the tasks trained and the next), got {len(stability)}")
    if drift_fires(stability[k], drift[k - 1] if k else None):
        named = k + 1 + LAG
        if named > budget:
            return Forecast(k, None, None, None, budget, "drift")
        return Forecast(k, named, named, named + 1, budget, "drift")
    g = growth(stability)

    def at(slope: float) -> int | None:
        return max(k + 1, math.ceil(1 + s_at / slope) + lag) if slope > 0 else None

    task = at(g) if g is not None else None
    if g is None or task is None or task > budget:
        return Forecast(k, None, None, None, budget, "growth")
    hi = at(g * (1 - spread)) if spread < 1 else None
    return Forecast(k, task, at(g * (1 + spread)), hi if hi is not None and hi <= budget else None, budget, "growth")


def forecasts(stability: Values, drift: Values, budget: int) -> list[Forecast]:
    """The forecast after each task 1..n of a run that recorded ``stability`` and ``drift`` for n tasks
    (the next task's stability unknown after the last: no forecast there). For scoring archives."""
    n = min(len(stability), len(drift))
    return [forecast(stability[: k + 1], drift[:k], budget) for k in range(1, n)]


def recorded(diagnostics: list[dict], next_stability: float | None, budget: int) -> dict:
    """The forecast as a run records it after the last of ``diagnostics`` (each with "stability" and
    "unstable_drift"): ``forecast`` is the task, budget + 1 for none within the budget."""
    f = forecast(
        [d.get("stability") for d in diagnostics] + [next_stability],
        [d.get("unstable_drift") for d in diagnostics],
        budget,
    )
    late = budget + 1
    return {
        "forecast": late if f.task is None else f.task,
        "forecast_lo": late if f.lo is None else f.lo,
        "forecast_hi": None if f.task is None else f.hi,
    }


def from_recorded(d: dict, budget: int) -> Forecast | None:
    """The Forecast a diagnostics row recorded (the inverse of ``recorded``), or None if none was."""
    task = d.get("forecast")
    if task is None:
        return None
    late = int(task) > budget
    return Forecast(
        int(d["task"]),
        None if late else int(task),
        None if late else d.get("forecast_lo"),
        None if late else d.get("forecast_hi"),
        budget,
        "recorded",
    )


class Watch:
    """What a running run should say after each task, once: the plain rule's warning ("unstable": the next
    task trains with s >= ``LIMIT``), the drift rule's ("drift" or "steep", naming its task), and the
    forecast when it first becomes confident and whenever it leaves its last printed interval."""

    def __init__(self, budget: int):
        self.budget = budget
        self.said: set[str] = set()
        self.shown: Forecast | None = None

    def after(self, t: int, d: dict, next_stability: float | None) -> list[tuple[str, object]]:
        """Events after task ``t`` (1-based) from its diagnostics row ``d``: (kind, value) pairs."""
        out: list[tuple[str, object]] = []
        if "unstable" not in self.said and next_stability is not None and next_stability >= LIMIT:
            self.said.add("unstable")
            out.append(("unstable", next_stability))
        why = drift_fires(next_stability, d.get("unstable_drift"))
        if "drift" not in self.said and why:
            self.said.add("drift")
            out.append((why, t + 1 + LAG))
        f = from_recorded(d, self.budget)
        if f is not None and f.confident and self._moved(f):
            self.shown = f
            out.append(("forecast", f))
        return out

    def _moved(self, f: Forecast) -> bool:
        old = self.shown
        if old is None:
            return True
        if (old.task is None) != (f.task is None):
            return True
        if f.task is None or old.lo is None:  # both without a task (a task always comes with its lo)
            return False
        return not (old.lo <= f.task <= (old.hi if old.hi is not None else math.inf))


def within(task: int | None, truth: int | None, budget: int, tasks: float, share: float) -> bool:
    """Whether a forecast ``task`` (None: none within ``budget``) is right: within max(``tasks``, ``share``
    x the blackout task) of it, or no blackout forecast for a run that had none within the budget."""
    if truth is None or truth > budget:
        return task is None
    return task is not None and abs(task - truth) <= max(tasks, share * truth)
