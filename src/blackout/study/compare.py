"""Method comparison: a pure function of run results, ranking settings by how long and how well they learn.

One row per setting (method, its settings that vary in the set, the network), over seeds:

- ``blackout``: mean blackout task; runs without blackout count at their bound (tasks run + 1) and
  make the mean a lower bound (``censored`` says how many);
- ``tasks_learned``: mean number of tasks learned before blackout (blackout task - 1, or all tasks run);
- ``acc@K``: mean over seeds of the average accuracy over tasks 1..K after training task K (K: 10,
  20, 30 and 100, those the longest run reaches; its last task when it is shorter than 10). A run
  that blacked out before task K contributes the average accuracy of its blackout row: a diverged
  network (NaN weights) cannot learn again, and the run stopped there. Such values are flagged;
- ``new_task_acc``: mean over seeds of the accuracy on the last task run, just after learning it
  (plasticity), and ``dead_units`` at the last task;
- ``retained``: mean number of tasks still at >= retain_frac of their just-learned accuracy;
- ``memory_floats`` / ``memory_samples``: what the method keeps between tasks after the last task
  (importances, anchors, bases, stored images; stored training samples), so that settings are
  compared at equal memory and "no stored data" is a measured claim;
- ``causes``: how the runs that blacked out did so.

Rows are ranked by tasks learned, then by accuracy after the last checkpoint.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from statistics import mean
from typing import Any

from ..experiment.result import Result, finite_or_none
from .capacity import fmt

CHECKPOINTS = (10, 20, 30)


def setting_labels(results: list[Result]) -> dict[str, str]:
    """run_id -> "ewc λ=15", "online-ewc λ=5 gamma=0.9": the method, its strength and its other
    settings that take more than one value among the runs of that method."""
    by_method: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_method[r.method].append(r)
    out = {}
    for runs in by_method.values():
        names = sorted({k for r in runs for k in r.method_settings})
        varying = [k for k in names if k != "lam" and len({fmt(r.method_settings.get(k)) for r in runs}) > 1]
        for r in runs:
            out[r.run_id] = setting_label(r, varying)
    return out


def setting_label(r: Result, varying: Sequence[str] = ()) -> str:
    s = r.method_settings
    parts = [r.method]
    if "lam" in s:
        parts.append(f"λ={fmt(s['lam'])}")
    parts += [f"{k}={fmt(s[k])}" for k in varying if k in s]
    return " ".join(parts)


def network_label(r: Result) -> str:
    """Hidden widths for an MLP ("100", "50,50"); a CNN also names its channels ("cnn 8,16 / 64");
    a gated network says so ("100 xdg 0.8")."""
    m = r.config["model"]
    hidden = ",".join(map(str, m["hidden"]))
    label = f"cnn {','.join(map(str, m.get('channels', [])))} / {hidden}" if m.get("arch") == "cnn" else hidden
    return f"{label} xdg {fmt(m['gating'])}" if m.get("gating") else label


def run_label(r: Result) -> str:
    """One short line naming a run: setting, network, seed."""
    return f"{setting_labels([r])[r.run_id]}, network {network_label(r)}, seed {r.seed}"


def settings_of(results: list[Result]) -> list[tuple[str, list[Result]]]:
    """Runs grouped so that a group differs only in seed: setting label, plus the network when
    networks vary (averaging a narrow net that blacked out with a wide one describes neither)."""
    labels = setting_labels(results)
    several = len({network_label(r) for r in results}) > 1
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[f"{labels[r.run_id]}, network {network_label(r)}" if several else labels[r.run_id]].append(r)
    return sorted(groups.items(), key=lambda kv: (labels[kv[1][0].run_id], sum(kv[1][0].hidden), kv[0]))


def avg_after(r: Result, k: int) -> tuple[float | None, bool]:
    """(average accuracy over tasks 1..k after task k, whether it is the blackout row's instead)."""
    if r.tasks_run >= k:
        return float(r.acc[k - 1, :k].mean()), False
    if r.verdict.task:
        row = [v for v in r.acc[-1, : r.tasks_run].tolist() if v == v]
        return (mean(row) if row else None), True
    return None, False  # the run was simply shorter than k tasks


def checkpoints_for(results: list[Result]) -> tuple[int, ...]:
    """10, 20, 30 and 100, those some run is long enough to reach; a study of fewer than 10 tasks is
    read after its last task (a column no run can fill says nothing)."""
    longest = max((r.config["data"]["tasks"] for r in results), default=0)
    reached = tuple(k for k in CHECKPOINTS + (100,) if k <= longest)
    return reached or ((longest,) if longest else CHECKPOINTS)


def mean_known(values: list[float | None]) -> float | None:
    """The mean of the measured values; None when none was measured."""
    known = [v for v in values if v is not None]
    return mean(known) if known else None


def method_table(results: list[Result], checkpoints: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    checkpoints = checkpoints or checkpoints_for(results)
    labels = setting_labels(results)
    groups: dict[tuple, list[Result]] = defaultdict(list)
    for r in results:
        groups[(labels[r.run_id], network_label(r))].append(r)
    rows = []
    for (label, width), runs in groups.items():
        bounds = [r.verdict.task or r.tasks_run + 1 for r in runs]
        censored = sum(1 for r in runs if not r.verdict.task)
        last_new = [finite_or_none(r.acc[r.tasks_run - 1, r.tasks_run - 1]) for r in runs if r.tasks_run]
        dead = [r.diagnostic("dead_units")[-1] for r in runs if r.diagnostics]
        floats = [r.diagnostic("memory_floats")[-1] for r in runs if r.diagnostics]
        samples = [r.diagnostic("memory_samples")[-1] for r in runs if r.diagnostics]
        row: dict[str, Any] = {
            "setting": label,
            "method": runs[0].method,
            "width": width,
            "runs": len(runs),
            "censored": censored,
            "blackout": mean(bounds),
            "blackout_is_bound": censored > 0,
            "tasks_learned": mean(b - 1 for b in bounds),
            "causes": dict(Counter(r.verdict.cause for r in runs if r.verdict.cause)),
            "new_task_acc": mean_known(last_new),
            "dead_units": mean_known(dead),
            "retained": mean(r.verdict.retained for r in runs),
            # what the method keeps between tasks after the last task, so settings compare at equal memory
            "memory_floats": mean_known(floats),
            "memory_samples": mean_known(samples),
            "tasks_run": max(r.tasks_run for r in runs),
        }
        for k in checkpoints:
            vals = [avg_after(r, k) for r in runs]
            got = [v for v, _ in vals if v is not None]
            row[f"acc@{k}"] = mean(got) if len(got) == len(runs) else None
            row[f"acc@{k}_after_blackout"] = any(flag for _, flag in vals)
        rows.append(row)
    last = f"acc@{checkpoints[-1]}"
    rows.sort(key=lambda r: (-r["tasks_learned"], -(r[last] if r[last] is not None else -1), r["setting"], r["width"]))
    return rows
