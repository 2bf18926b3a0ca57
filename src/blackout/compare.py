"""Method comparison: a pure function of run results, ranking settings by how long they last.

One row per setting (method, its strength and options, the network), over seeds:

- ``blackout``: mean blackout task; runs without blackout count at their bound (tasks run + 1) and
  make the mean a lower bound (``censored`` says how many);
- ``tasks_learned``: mean number of tasks learned before blackout (blackout task - 1, or all tasks run);
- ``acc@K``: mean over seeds of the average accuracy over tasks 1..K after training task K. A run
  that blacked out before task K contributes the average accuracy of its blackout row: a diverged
  network (NaN weights) cannot learn again, and the run stopped there. Such values are flagged.
- ``causes``: how the runs that blacked out did so.

Rows are ranked by tasks learned, then by accuracy after the last checkpoint.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from statistics import mean
from typing import Any

CHECKPOINTS = (10, 20, 30)
METHOD_KEYS = ("method", "lam", "gamma", "prox", "memory", "xi", "temperature", "ewc_form")
DEFAULTS = {"gamma": 1.0, "prox": False, "memory": 500, "xi": 0.1, "temperature": 2.0, "ewc_form": "merged"}
USES = {  # which method settings mean something for which method (the rest are left out of the label)
    "sgd": (), "l2": ("lam",), "ewc": ("lam", "ewc_form"), "online-ewc": ("lam", "gamma"),
    "ewc-l1": ("lam", "prox"), "ewc-prox": ("lam",), "si": ("lam", "xi"), "mas": ("lam",),
    "replay": ("memory",), "agem": ("memory",), "lwf": ("lam", "temperature"),
}


def setting_label(result: dict) -> str:
    m = result["config"]["method"]
    parts = [m["method"]]
    for key in USES.get(m["method"], ("lam",)):
        value = m.get(key, DEFAULTS.get(key))
        if value is not None and (key == "lam" or value != DEFAULTS.get(key)):
            name = "λ" if key == "lam" else key
            parts.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts)


def network_label(result: dict) -> str:
    """Hidden widths for an MLP ("100", "50,50"); a CNN also names its channels ("cnn 8,16 / 64")."""
    m = result["config"]["model"]
    hidden = ",".join(map(str, m["hidden"]))
    if m.get("arch") == "cnn":
        return f"cnn {','.join(map(str, m.get('channels', [])))} / {hidden}"
    return hidden


def _avg_after(result: dict, k: int) -> tuple[float | None, bool]:
    acc = result["acc"]
    if len(acc) >= k:
        row = acc[k - 1][:k]
        return mean(v for v in row if v is not None), False
    b = result["blackout"]
    if b.get("task"):
        row = [v for v in acc[-1][: len(acc)] if v is not None]
        return (mean(row) if row else None), True
    return None, False  # the run was simply shorter than k tasks


def method_table(results: list[dict], checkpoints: tuple[int, ...] = CHECKPOINTS) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[(setting_label(r), network_label(r))].append(r)
    rows = []
    for (label, width), runs in groups.items():
        bounds = [r["blackout"]["task"] or len(r["acc"]) + 1 for r in runs]
        censored = sum(1 for r in runs if not r["blackout"]["task"])
        row: dict[str, Any] = {
            "setting": label, "method": runs[0]["config"]["method"]["method"], "width": width, "runs": len(runs),
            "censored": censored, "blackout": mean(bounds), "blackout_is_bound": censored > 0,
            "tasks_learned": mean(b - 1 for b in bounds),
            "causes": dict(Counter(r["blackout"]["cause"] for r in runs if r["blackout"]["cause"])),
        }
        for k in checkpoints:
            vals = [_avg_after(r, k) for r in runs]
            got = [v for v, _ in vals if v is not None]
            row[f"acc@{k}"] = mean(got) if len(got) == len(runs) else None
            row[f"acc@{k}_after_blackout"] = any(flag for _, flag in vals)
        rows.append(row)
    last = f"acc@{checkpoints[-1]}"
    rows.sort(key=lambda r: (-r["tasks_learned"], -(r[last] if r[last] is not None else -1), r["setting"], r["width"]))
    return rows
