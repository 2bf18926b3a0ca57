"""Does the stability number predict the blackout task? Agreement statistics over runs.

The stability number s = lr x lambda x max_i A_i is recorded for the penalty in force while each
task trains. Gradient descent on a quadratic of curvature c is unstable once lr c > 2, so the
first task with s >= 2 is a prediction of the blackout task. It only means that for a quadratic
penalty applied through its gradient with plain SGD (``Verdict.stability_applies``): runs of
Adam, of proximal steps and of the L1 penalty are left out of these statistics.
"""

from __future__ import annotations

from ..experiment.result import Result
from ..experiment.verdict import first_unstable

THRESHOLD = 2.0


def stability_agreement(results: list[Result], threshold: float = THRESHOLD) -> dict:
    """Per run, the first task with stability >= ``threshold`` against the observed blackout task.

    ``share_within_one`` is the share of runs with both defined where they differ by at most one
    task (None if no such run). Runs with only one of the two are counted, not compared: a run that
    turned unstable but never blacked out may simply have been stopped too early. ``lead`` is the
    blackout task minus the first unstable task.
    """
    runs = []
    for r in results:
        if not r.verdict.stability_applies:
            continue
        first = first_unstable(r.diagnostic("stability"), threshold)
        bt = r.verdict.task
        both = first is not None and bt is not None
        runs.append({"run_id": r.run_id, "first_unstable": first, "blackout_task": bt,
                     "agree": abs(first - bt) <= 1 if both else None, "lead": bt - first if both else None})
    compared = [r for r in runs if r["agree"] is not None]
    return {
        "threshold": float(threshold),
        "runs": runs,
        "n_runs": len(runs),
        "n_left_out": len(results) - len(runs),
        "n_compared": len(compared),
        "n_agree": sum(r["agree"] for r in compared),
        "share_within_one": sum(r["agree"] for r in compared) / len(compared) if compared else None,
        "n_neither": sum(r["first_unstable"] is None and r["blackout_task"] is None for r in runs),
        "n_only_unstable": sum(r["first_unstable"] is not None and r["blackout_task"] is None for r in runs),
        "n_only_blackout": sum(r["first_unstable"] is None and r["blackout_task"] is not None for r in runs),
    }
