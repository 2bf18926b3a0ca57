"""Predicting the blackout task from what a run measures: two rules and their agreement with runs.

The stability number s = lr x lambda x max_i A_i is recorded for the penalty in force while each
task trains. Gradient descent on a quadratic of curvature c is unstable once lr c > 2, so the first
task with s >= 2 is a warning, often some tasks ahead. It is not the blackout task: an unstable
weight grows geometrically, but while its input is silent (its unit has been shut off, or its pixel
is blank in the task) it takes no part in the loss, and the run goes on. The run diverges at the
first task whose inputs reach a weight that has already grown large, which the ``reach`` rule reads
from the ``unstable_reach`` diagnostic: the largest |theta_i - mu_i| among the unstable weights that
the task's training images touch, measured at the task's start. Its threshold ``REACH_LIMIT`` was
chosen on seeds 0-4 of the seed-capacity and stability-grid studies and is reported on seeds 5-9
(docs/analysis/predictor.py, docs/findings.md).

Both rules only mean something for a quadratic penalty applied through its gradient with plain SGD
(``Verdict.stability_applies``): runs of Adam, of proximal steps and of the L1 penalty are left out.
"""

from __future__ import annotations

from statistics import mean
from typing import Callable

from ..experiment.result import Result
from ..experiment.verdict import first_unstable

THRESHOLD = 2.0
REACH_LIMIT = 10.0  # |theta_i - mu_i| of an unstable weight in reach of a task's inputs; see the module doc

Rule = Callable[[Result], "int | None"]


def stability_rule(r: Result, threshold: float = THRESHOLD) -> int | None:
    """The first task trained with s >= ``threshold``."""
    return first_unstable(r.diagnostic("stability"), threshold)


def reach_rule(r: Result, limit: float = REACH_LIMIT) -> int | None:
    """The first task whose inputs, at its start, reach an unstable weight already ``limit`` from its anchor."""
    for t, v in enumerate(r.diagnostic("unstable_reach")):
        if v is not None and v >= limit:
            return t + 1
    return None


RULES: dict[str, tuple[Rule, str]] = {
    "stability": (stability_rule, "first task with s >= 2"),
    "reach": (reach_rule, f"first task whose inputs reach an unstable weight >= {REACH_LIMIT:g} from its anchor"),
}


def agreement(results: list[Result], rule: Rule = stability_rule) -> dict:
    """Per run, the rule's task against the observed blackout task, and the summary.

    ``share_within_one`` counts runs with both defined that differ by at most one task (None if no
    such run); ``exact`` those where they are equal. Runs with only one of the two are counted, not
    compared: a run that turned unstable but never blacked out may simply have been stopped too
    early. ``lead`` is the blackout task minus the predicted one (how many tasks ahead it warned).
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
    return {
        "runs": runs,
        "n_runs": len(runs),
        "n_left_out": len(results) - len(runs),
        "n_compared": len(compared),
        "n_agree": sum(r["agree"] for r in compared),
        "n_exact": sum(r["lead"] == 0 for r in compared),
        "share_within_one": sum(r["agree"] for r in compared) / len(compared) if compared else None,
        "warn_lead": mean(r["lead"] for r in compared) if compared else None,
        "n_neither": sum(r["first_unstable"] is None and r["blackout_task"] is None for r in runs),
        "n_only_unstable": sum(r["first_unstable"] is not None and r["blackout_task"] is None for r in runs),
        "n_only_blackout": sum(r["first_unstable"] is None and r["blackout_task"] is not None for r in runs),
    }


def stability_agreement(results: list[Result], threshold: float = THRESHOLD) -> dict:
    """``agreement`` of the first task with s >= ``threshold`` (the plain rule)."""
    return {"threshold": float(threshold), **agreement(results, lambda r: stability_rule(r, threshold))}


def predictor_agreement(results: list[Result]) -> dict:
    """``agreement`` of the reach rule, with its name, for the analysis and the report."""
    return {"name": RULES["reach"][1], "limit": REACH_LIMIT, **agreement(results, reach_rule)}
