"""Plan a run for a task budget: the largest lambda (or learning rate) the forecast says survives it.

The stability number is s = lr x lambda x max A, and the forecast reads blackout from the line
s_t = g (t - 1) (``forecast``). A short probe at the given settings measures g; to first order the
largest importance A does not depend on lr x lambda, so g scales with the product, and the planned
value is the largest at which the forecast's interval still starts after the budget T:
ceil(1 + S / (g' (1 + spread))) + L > T with g' = g x value / probed value. That margin (the
interval's spread) is the one the forecast was scored with. The average accuracy such a run reaches
is not forecast: the plan reports the probe's own, measured at the probed value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from ..config import RunConfig
from ..errors import ConfigError
from . import forecast as fc
from .result import Result

KNOBS = ("lam", "lr")


@dataclass
class Plan:
    """``knob`` planned to ``value`` for ``budget`` tasks, from a probe of ``probe.tasks_run`` tasks at ``probed``."""

    knob: str
    value: float | None  # None: the probe's penalty did not grow; any value survives by the forecast
    probed: float
    budget: int
    growth: float  # g of the probe: its stability number's rise per task
    config: RunConfig | None  # the planned run's configuration: the value, ``budget`` tasks
    forecast: fc.Forecast | None  # the forecast at the planned value, after the probe's tasks
    curve: list[float]  # the forecast stability number s_t at the planned value, t = 1..budget
    probe: Result

    @property
    def probe_avg_acc(self) -> float | None:
        return self.probe.metrics.get("avg_acc")

    def text(self) -> str:
        if self.value is None:
            return (
                f"the probe's stability number did not grow over {self.probe.tasks_run} tasks: no {self.knob} is "
                f"limited by the forecast"
            )
        margin = f"its interval's first task past {self.budget}"
        return (
            f"plan: {self.knob} = {self.value:.3g} (probed at {self.probed:g}: s grew {self.growth:.3g} per task) "
            f"survives {self.budget} tasks by the forecast, with {margin}; the forecast at it: "
            f"{self.forecast.text() if self.forecast else 'none'}. The probe's average accuracy after "
            f"{self.probe.tasks_run} tasks at {self.probed:g}: {self.probe_avg_acc:.3f} (at the planned value it is "
            f"not forecast)"
        )

    def to_dict(self) -> dict:
        f = self.forecast
        return {
            "knob": self.knob,
            "value": self.value,
            "probed": self.probed,
            "budget": self.budget,
            "growth": self.growth,
            "forecast": None if f is None else dataclasses.asdict(f),
            "curve": self.curve,
            "probe_tasks": self.probe.tasks_run,
            "probe_avg_acc": self.probe_avg_acc,
            "config": None if self.config is None else self.config.to_dict(),
        }


def largest(
    g: float, budget: int, s_at: float = fc.FORECAST_S, lag: int = fc.FORECAST_LAG, spread: float = fc.FORECAST_SPREAD
) -> float:
    """The largest growth per task whose forecast interval starts after ``budget``: the inverse of
    ``forecast.forecast``'s low end (a hair below the bound, where ceil would still land on it)."""
    room = budget - lag - 1
    if room <= 0:
        raise ConfigError(f"--budget: expected at least {lag + 2} tasks (the forecast's lag is {lag}), got {budget}")
    return s_at / ((1 + spread) * room) * (1 - 1e-9)


def check(cfg: RunConfig, budget: int, knob: str, probe: int) -> None:
    if knob not in KNOBS:
        raise ConfigError(f"--for: expected one of {', '.join(KNOBS)}, got {knob!r}")
    if cfg.method.method not in fc.FORECAST_METHODS or cfg.train.optimizer != "sgd":
        raise ConfigError(
            f"method: the forecast is designed for {', '.join(fc.FORECAST_METHODS)} with the sgd optimizer, "
            f"got {cfg.method.method} with {cfg.train.optimizer}"
        )
    if probe < 2:
        raise ConfigError(f"--probe: expected at least 2 tasks (the forecast needs the growth of s), got {probe}")
    if budget <= probe:
        raise ConfigError(f"--budget: expected more tasks than the probe's {probe}, got {budget}")
    largest(1.0, budget)


def plan(
    cfg: RunConfig,
    budget: int,
    knob: str = "lam",
    probe: int = 3,
    train: Callable[[RunConfig, Callable], Result] | None = None,
) -> Plan:
    """Probe ``cfg`` for ``probe`` tasks and plan ``knob`` for ``budget`` tasks (``train(cfg, on_task)``
    runs a configuration; the default trains it here)."""
    from .train import run

    check(cfg, budget, knob, probe)
    probe_cfg = RunConfig.from_flat({"tasks": probe}, cfg)
    after: dict = {}

    def record(t: int, info: dict) -> None:
        after[t + 1] = info.get("next_stability")

    result = train(probe_cfg, record) if train else run(probe_cfg, on_task=record)
    s = result.diagnostic("stability") + [after.get(result.tasks_run)]  # the next task's, if it went on
    g = fc.growth(s) or 0.0
    probed = float(cfg.method.lam if knob == "lam" else cfg.train.lr)
    if g <= 0:
        return Plan(knob, None, probed, budget, g, None, None, [], result)
    value = round_down(probed * largest(g, budget) / g)
    planned = RunConfig.from_flat({knob: value, "tasks": budget}, cfg)
    g2 = g * value / probed
    curve = [g2 * t for t in range(budget)]
    k = result.tasks_run
    f = fc.forecast(curve[: k + 1], [None] * k, 100 * budget)  # where it lands past the budget, with its interval
    return Plan(knob, value, probed, budget, g, planned, f, curve, result)


def round_down(x: float, digits: int = 3) -> float:
    """``x`` cut (never rounded up) to ``digits`` significant digits: a plan must not overshoot its bound."""
    scale = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    return float(f"{math.floor(x / scale * (1 + 1e-12)) * scale:.{digits}g}") if x > 0 else x
