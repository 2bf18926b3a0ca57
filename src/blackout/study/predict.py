"""The blackout rules and the forecast scored against runs: their agreement with the blackout task.

The rules themselves (the plain rule s >= 2, the drift rule, the forecast) live at the run level in
``experiment.forecast``, which the run's warnings use too; here they are applied to Results and
counted. They only mean something for a quadratic penalty applied through its gradient with plain
SGD (``Verdict.stability_applies``): runs of Adam, of proximal steps and of the L1 penalty are left out.
"""

from __future__ import annotations

from collections.abc import Callable

from ..experiment import forecast as fc
from ..experiment.forecast import DRIFT_LIMIT, LAG, LIMIT, S_LIMIT
from ..experiment.result import Result
from .analysis import Agreement, ForecastCheck, Forecasted, Horizon, RuleRun

THRESHOLD = LIMIT
#: where the forecast is scored: (tasks measured, right within that many tasks, or that share of the blackout task)
HORIZONS = ((3, 2, 0.2), (5, 1, 0.1))

Rule = Callable[[Result], "int | None"]


def stability_rule(r: Result, threshold: float = THRESHOLD) -> int | None:
    """The first task trained with s >= ``threshold``."""
    return fc.first_unstable(r.diagnostic("stability"), threshold)


def drift_rule(r: Result, limit: float = DRIFT_LIMIT, s_limit: float = S_LIMIT, lag: int = LAG) -> int | None:
    """``lag`` tasks after the first task t that starts with an unstable weight ``limit`` from its anchor
    (the drift recorded at the end of task t - 1) or trains with s >= ``s_limit``; known at task t's start."""
    return fc.drift_rule(r.diagnostic("stability"), r.diagnostic("unstable_drift"), limit, s_limit, lag)


RULES: dict[str, tuple[Rule, str]] = {
    "stability": (stability_rule, f"first task with s >= {LIMIT:g}"),
    "drift": (
        drift_rule,
        f"the task after one that starts with an unstable weight >= {DRIFT_LIMIT:g} from its "
        f"anchor or trains with s >= {S_LIMIT:g}",
    ),
}


def agreement(results: list[Result], rule: Rule = stability_rule, name: str = "", **params) -> Agreement:
    """Per run the rule applies to, the rule's task against the observed blackout task (``Agreement``).

    A run is named right when both are defined within one task, or neither is (no blackout, none
    predicted); a blackout the rule missed and a warning for a run that never blacked out are both
    wrong. ``lead`` is the blackout task minus the named one (how many tasks ahead it warned).
    """
    runs: list[RuleRun] = []
    for r in results:
        if not r.verdict.stability_applies:
            continue
        first, bt = rule(r), r.verdict.task
        lead = bt - first if first is not None and bt is not None else None
        runs.append(RuleRun(r.run_id, r.seed, first, bt, abs(lead) <= 1 if lead is not None else None, lead))
    return Agreement(name, runs, len(results) - len(runs), **params)


def stability_agreement(results: list[Result], threshold: float = THRESHOLD) -> Agreement:
    """``agreement`` of the first task with s >= ``threshold`` (the plain rule)."""
    return agreement(results, lambda r: stability_rule(r, threshold), f"s >= {threshold:g}", threshold=float(threshold))


def predictor_agreement(results: list[Result]) -> Agreement:
    """``agreement`` of the drift rule, with its name, for the analysis and the report. Its lead counts
    from the task at whose start it fires, ``LAG`` tasks before the task it names."""
    return agreement(results, drift_rule, RULES["drift"][1], limit=DRIFT_LIMIT, s_limit=S_LIMIT, fires_before=LAG)


def forecasts_of(r: Result) -> Forecasted:
    """The forecasts a run made after each task: recorded in its diagnostics, or, for a result made
    before they were, computed now from its stability numbers and drifts by the same function."""
    budget = int(r.config["data"]["tasks"])
    if any(d.get("forecast") is not None for d in r.diagnostics):
        made = [f for d in r.diagnostics if (f := fc.from_recorded(d, budget)) is not None]
    else:
        made = fc.forecasts(r.diagnostic("stability"), r.diagnostic("unstable_drift"), budget)[1:]  # from task 2 on
    return Forecasted(
        r.run_id,
        r.seed,
        r.verdict.task,
        budget,
        [f.after for f in made],
        [f.task for f in made],
        [f.lo for f in made],
        [f.hi for f in made],
    )


def forecast_check(results: list[Result]) -> ForecastCheck:
    """The forecast against the truth for every run it is made for, scored at ``HORIZONS``."""
    runs = [forecasts_of(r) for r in results if forecasts_for(r)]
    horizons = []
    for k, tasks, share in HORIZONS:
        gone = [f.blackout_task is not None and f.blackout_task <= k for f in runs]
        made = [(f, i) for f, g in zip(runs, gone) if not g and (i := f.made_after(k)) is not None]
        right = sum(fc.within(f.task[i], f.blackout_task, f.budget, tasks, share) for f, i in made)
        horizons.append(Horizon(k, tasks, share, right, len(made), sum(gone)))
    return ForecastCheck(runs, horizons, len(results) - len(runs))


def forecasts_for(r: Result) -> bool:
    """Whether the run forecasts its blackout task (a method the forecast holds for, with plain SGD)."""
    return r.verdict.stability_applies and r.method in fc.FORECAST_METHODS
