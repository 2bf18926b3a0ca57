"""The analysis of a study as a typed value: per group of runs its points, intervals and fitted laws;
per blackout rule its agreement with the runs; the forecast against the truth.

``capacity.analyze`` builds it; the terminal renderer, the figures and the report read it by
attribute, and ``to_dict`` is its one JSON form (``blackout analyze --json``): plain dicts, lists,
numbers, strings and None, never NaN.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..experiment.result import jsonable


@dataclass(frozen=True)
class Point:
    """One run on the capacity curve: its blackout task ``y`` (its bound + 1 when ``censored``)."""

    x: float
    y: float | None
    censored: bool
    seed: int
    run_id: str
    cause: str | None = None


@dataclass(frozen=True)
class Interval:
    """The runs at one capacity: the mean blackout task and its t-interval over seeds (a lower bound
    where some runs were censored)."""

    x: float
    n: int
    n_censored: int
    mean: float
    ci_lo: float | None
    ci_hi: float | None
    mean_is_lower_bound: bool
    values: list[float] = field(default_factory=list)
    censored: list[bool] = field(default_factory=list)


@dataclass(frozen=True)
class Fit:
    """A fitted law, y = a + b x ("linear") or y = a x^b ("power"), with the bootstrap interval of b."""

    kind: str
    ok: bool
    a: float | None
    b: float | None
    b_ci: list[float] | None
    r2: float | None
    aic: float | None
    method: str
    reason: str
    raw: dict = field(default_factory=dict, repr=False)  # everything the fit returned, for the JSON form

    @classmethod
    def of(cls, kind: str, d: dict) -> Fit:
        a, b = ("intercept", "slope") if kind == "linear" else ("coef", "exponent")
        return cls(
            kind,
            bool(d.get("ok")) and d.get(b) is not None,
            d.get(a),
            d.get(b),
            d.get(f"{b}_ci"),
            d.get("r2"),
            d.get("aic"),
            str(d.get("method") or ""),
            str(d.get("reason") or ""),
            d,
        )

    @property
    def ci_has_zero(self) -> bool:
        """Whether b's interval includes zero (the law does not show that capacity moves the task)."""
        if not self.b_ci:
            return False
        return self.b_ci[0] <= 0 <= self.b_ci[1]

    def at(self, x):
        """The law's value at ``x`` (a number or a numpy array)."""
        return self.a + self.b * x if self.kind == "linear" else self.a * x**self.b


@dataclass(frozen=True)
class Group:
    """Runs that differ only in capacity and seed: their points, intervals and both laws."""

    label: str
    settings: dict
    points: list[Point]
    summary: list[Interval]
    linear: Fit
    power: Fit
    better: str | None  # "linear", "power", "tie", or None when a fit failed
    delta_aic: float | None

    @property
    def n(self) -> int:
        return len(self.points)

    @property
    def n_censored(self) -> int:
        return sum(p.censored for p in self.points)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "settings": self.settings,
            "n": self.n,
            "n_censored": self.n_censored,
            "points": [dataclasses.asdict(p) for p in self.points],
            "summary": [dataclasses.asdict(s) for s in self.summary],
            "linear": self.linear.raw,
            "power": self.power.raw,
            "better": self.better,
            "delta_aic": self.delta_aic,
        }


@dataclass(frozen=True)
class RuleRun:
    """One run under a rule: the task the rule names (``first_unstable``) against the blackout task."""

    run_id: str
    seed: int
    first_unstable: int | None
    blackout_task: int | None
    agree: bool | None  # within one task, when both exist
    lead: int | None  # blackout task - named task, when both exist


@dataclass(frozen=True)
class Agreement:
    """A rule against the runs it applies to (``predict.agreement``)."""

    name: str
    runs: list[RuleRun]
    n_left_out: int
    threshold: float | None = None
    limit: float | None = None
    s_limit: float | None = None
    fires_before: int = 0  # tasks between the rule firing and the task it names (counted in its lead)

    @property
    def n_runs(self) -> int:
        return len(self.runs)

    @property
    def compared(self) -> list[RuleRun]:
        return [r for r in self.runs if r.agree is not None]

    @property
    def n_compared(self) -> int:
        return len(self.compared)

    @property
    def n_agree(self) -> int:
        return sum(bool(r.agree) for r in self.compared)

    @property
    def n_exact(self) -> int:
        return sum(r.lead == 0 for r in self.compared)

    @property
    def share_within_one(self) -> float | None:
        return self.n_agree / self.n_compared if self.compared else None

    @property
    def warn_lead(self) -> float | None:
        """Mean tasks from the rule firing to the blackout task."""
        leads = [r.lead for r in self.compared if r.lead is not None]  # every compared run has one
        return sum(leads) / len(leads) + self.fires_before if leads else None

    @property
    def n_neither(self) -> int:
        return sum(r.first_unstable is None and r.blackout_task is None for r in self.runs)

    @property
    def share_right(self) -> float | None:
        """Runs named right: within one task, or neither named nor blacked out."""
        return (self.n_agree + self.n_neither) / self.n_runs if self.runs else None

    @property
    def n_only_unstable(self) -> int:
        return sum(r.first_unstable is not None and r.blackout_task is None for r in self.runs)

    @property
    def n_only_blackout(self) -> int:
        return sum(r.first_unstable is None and r.blackout_task is not None for r in self.runs)

    def to_dict(self) -> dict:
        keys = (
            "name",
            "threshold",
            "limit",
            "s_limit",
            "fires_before",
            "n_runs",
            "n_left_out",
            "n_compared",
            "n_agree",
            "n_exact",
            "share_within_one",
            "warn_lead",
            "n_neither",
            "share_right",
            "n_only_unstable",
            "n_only_blackout",
        )
        return {**{k: getattr(self, k) for k in keys}, "runs": [dataclasses.asdict(r) for r in self.runs]}


@dataclass(frozen=True)
class Forecasted:
    """One run's forecasts: after task ``after[i]`` it said ``task[i]`` (None: none within ``budget``)."""

    run_id: str
    seed: int
    blackout_task: int | None
    budget: int
    after: list[int]
    task: list[int | None]
    lo: list[int | None]
    hi: list[int | None]

    def made_after(self, k: int) -> int | None:
        """Index of the forecast made after task k, or None when the run made none then."""
        return self.after.index(k) if k in self.after else None


@dataclass(frozen=True)
class Horizon:
    """The forecasts made after ``k`` tasks, right when within max(``tasks``, ``share`` x the blackout task)."""

    k: int
    tasks: int
    share: float
    n_right: int
    n: int
    n_gone: int  # runs that blacked out by task k: nothing left to forecast

    @property
    def share_right(self) -> float | None:
        return self.n_right / self.n if self.n else None


@dataclass(frozen=True)
class ForecastCheck:
    """The forecast of the blackout task against the truth, per run and at the horizons it was scored at."""

    runs: list[Forecasted]
    horizons: list[Horizon]
    n_left_out: int  # runs the forecast is not made for (other methods, optimisers)

    def to_dict(self) -> dict:
        return {
            "n_left_out": self.n_left_out,
            "horizons": [{**dataclasses.asdict(h), "share_right": h.share_right} for h in self.horizons],
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }


@dataclass(frozen=True)
class Analysis:
    """A study's capacity law per group, and its blackout rules and forecast against the runs."""

    axis: str
    n_runs: int
    n_never_learned: int
    varying: list[str]
    sigma_min: float
    groups: list[Group]
    stability: Agreement
    predictor: Agreement
    forecast: ForecastCheck
    #: the data the runs trained on, one line per split (``Result.data_label``)
    data: list[str] = field(default_factory=list)

    @property
    def n_censored(self) -> int:
        return sum(g.n_censored for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "axis": self.axis,
                "n_runs": self.n_runs,
                "n_never_learned": self.n_never_learned,
                "n_censored": self.n_censored,
                "data": self.data,
                "varying": self.varying,
                "sigma_min": self.sigma_min,
                "groups": [g.to_dict() for g in self.groups],
                "stability": self.stability.to_dict(),
                "predictor": self.predictor.to_dict(),
                "forecast": self.forecast.to_dict(),
            }
        )
