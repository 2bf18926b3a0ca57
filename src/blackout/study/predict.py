"""The blackout rules and the forecast scored against runs: their agreement with the blackout task.

The rules themselves (the plain rule s >= 2, the drift rule, the forecast) live at the run level in
``experiment.forecast``, which the run's warnings use too; here they are applied to Results and
counted. They only mean something for a quadratic penalty applied through its gradient with plain
SGD (``Verdict.stability_applies``): runs of Adam, of proximal steps and of the L1 penalty are left out.
"""

from __future__ import annotations

from statistics import mean
from typing import Callable

from ..experiment import forecast as fc
from ..experiment.forecast import DRIFT_LIMIT, LAG, LIMIT, S_LIMIT
from ..experiment.result import Result

THRESHOLD = LIMIT

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
    "drift": (drift_rule, f"the task after one that starts with an unstable weight >= {DRIFT_LIMIT:g} from its "
                          f"anchor or trains with s >= {S_LIMIT:g}"),
}


def agreement(results: list[Result], rule: Rule = stability_rule) -> dict:
    """Per run, the rule's task against the observed blackout task, and the summary.

    ``share_within_one`` counts runs with both defined that differ by at most one task (None if no
    such run); ``exact`` those where they are equal. ``share_right`` is over every run: a run is
    named right when both are defined within one task, or neither is (no blackout, none predicted);
    a blackout the rule missed and a warning for a run that never blacked out are both wrong.
    ``lead`` is the blackout task minus the predicted one (how many tasks ahead it warned).
    """
    runs = []
    for r in results:
        if not r.verdict.stability_applies:
            continue
        first = rule(r)
        bt = r.verdict.task
        both = first is not None and bt is not None
        runs.append({"run_id": r.run_id, "seed": r.seed, "first_unstable": first, "blackout_task": bt,
                     "agree": abs(first - bt) <= 1 if both else None, "lead": bt - first if both else None})
    compared = [r for r in runs if r["agree"] is not None]
    n_neither = sum(r["first_unstable"] is None and r["blackout_task"] is None for r in runs)
    return {
        "runs": runs,
        "n_runs": len(runs),
        "n_left_out": len(results) - len(runs),
        "n_compared": len(compared),
        "n_agree": sum(r["agree"] for r in compared),
        "n_exact": sum(r["lead"] == 0 for r in compared),
        "share_within_one": sum(r["agree"] for r in compared) / len(compared) if compared else None,
        "warn_lead": mean(r["lead"] for r in compared) if compared else None,
        "n_neither": n_neither,
        "share_right": (sum(r["agree"] for r in compared) + n_neither) / len(runs) if runs else None,
        "n_only_unstable": sum(r["first_unstable"] is not None and r["blackout_task"] is None for r in runs),
        "n_only_blackout": sum(r["first_unstable"] is None and r["blackout_task"] is not None for r in runs),
    }


def stability_agreement(results: list[Result], threshold: float = THRESHOLD) -> dict:
    """``agreement`` of the first task with s >= ``threshold`` (the plain rule)."""
    return {"threshold": float(threshold), **agreement(results, lambda r: stability_rule(r, threshold))}


def predictor_agreement(results: list[Result]) -> dict:
    """``agreement`` of the drift rule, with its name, for the analysis and the report. Its lead counts
    from the task at whose start it fires, one task before the task it names."""
    a = agreement(results, drift_rule)
    if a["warn_lead"] is not None:
        a["warn_lead"] += LAG
    return {"name": RULES["drift"][1], "limit": DRIFT_LIMIT, "s_limit": S_LIMIT, **a}
