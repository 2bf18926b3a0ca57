"""Print a published-table study beside the paper's numbers, as the rows of docs/findings.md.

    python docs/analysis/published.py STUDY [STUDY ...] [--table hsu2018] [--loose SETTING [SETTING ...]]

Each STUDY is a study folder or archive of the table's preset (``hsu2018-split-mnist`` or
``zenke2017-permuted-mnist``) or part of it (any number of seeds); their runs are pooled. A run belongs
to a table row when its scenario and every setting of the row (blackout.presets.PUBLISHED_ROWS, then the
extra rows below) and of the preset's protocol (``pad``, ``normalize``, ``keep_optimizer``,
``mask_unseen``) match, except the ``--loose`` ones, whose values the runs had are then named in the
row; the number is the average accuracy over all tasks after the last, in %. Where the paper's data file
gives it (``[curve]``), a second table follows: the average over the tasks seen so far after each task,
ours above theirs. A row named "X (...)" is compared with the paper's X.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from blackout.api import Study
from blackout.config import LATER, RunConfig, load_toml, setting_of
from blackout.presets import PUBLISHED_ROWS, run_preset
from blackout.experiment.result import Result

PUBLISHED = Path(__file__).resolve().parents[1] / "published"
SCENARIOS = ["task", "domain", "class"]
PRESETS = {"hsu2018": "hsu2018-split-mnist", "zenke2017": "zenke2017-permuted-mnist"}
# Rows beside the preset's, compared with the paper's GEM: A-GEM, which the preset ran for GEM before
# blackout had GEM (docs/studies/hsu2018-seed0.jsonl.gz), and GEM without Hsu et al.'s rehearsal
# (docs/studies/hsu2018-gem-seed0.jsonl.gz). Each: (scenario, label) -> (the paper's row, settings).
_GEM = {"memory": 1100, "optimizer": "sgd", "lr": 0.01}
EXTRA_ROWS = {
    "hsu2018": {
        **{(sc, "A-GEM"): ("GEM", {"scenario": sc, "method": "agem", **_GEM}) for sc in ("domain", "class")},
        **{
            (sc, "GEM (without rehearsal)"): (
                "GEM",
                {"scenario": sc, "method": "gem", "memory_strength": 0.5, "rehearse": False, **_GEM},
            )
            for sc in ("domain", "class")
        },
    }
}


def flat(r: Result) -> dict:
    """The run's settings; those added after it ran at their defaults, as it ran."""
    stored = {k: v for section in r.config.values() for k, v in section.items()}
    return {**{k: setting_of(k).default for k in LATER}, **stored}


def protocol(table: str, scenario: str, settings: dict) -> dict:
    """A row's settings with the preset's protocol settings (padding, normalisation, optimizer state,
    masking) as a run of that row records them."""
    cfg = RunConfig.from_flat({**run_preset(PRESETS[table]), **settings, "scenario": scenario}, strict=False).flat()
    return {**{k: cfg[k] for k in LATER}, **settings}


def matches(r: Result, scenario: str, settings: dict, loose: set[str]) -> bool:
    values = flat(r)
    return r.scenario == scenario and all(values.get(k) == v for k, v in settings.items()
                                          if k != "scenario" and k not in loose)


def compared_rows(runs: list[Result], table: str, loose: set[str]):
    """(scenario, our row, the paper's row, our finished runs of it) for every row some run belongs to."""
    compared = {key: (key[1].split(" (")[0], settings) for key, settings in PUBLISHED_ROWS[PRESETS[table]].items()}
    compared.update(EXTRA_ROWS.get(table, {}))
    for (scenario, row), (paper_row, settings) in sorted(compared.items(), key=lambda kv: SCENARIOS.index(kv[0][0])):
        settings = protocol(table, scenario, settings)
        mine = [r for r in runs if matches(r, scenario, settings, loose)
                and r.tasks_run == r.config["data"]["tasks"] and r.metrics.get("avg_acc") is not None]
        if mine:
            differ = sorted({f"{k} {flat(r)[k]}" for r in mine for k in loose if k in settings and flat(r)[k] != settings[k]})
            yield scenario, row + (f" ({', '.join(differ)})" if differ else ""), paper_row, mine


def rows(runs: list[Result], table: str, loose: set[str] = frozenset()) -> list[str]:
    paper = load_toml(PUBLISHED / f"{table}.toml")["table"]
    out = []
    for scenario, label, paper_row, mine in compared_rows(runs, table, loose):
        accs = [100 * r.metrics["avg_acc"] for r in mine]
        mean, *spread = paper[scenario][paper_row]  # a table of single runs publishes no spread
        ours = f"{statistics.mean(accs):.2f}" + (f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else "")
        theirs = f"{mean:.2f}" + (f" ± {spread[0]:.2f}" if spread else " (one run)")
        out.append(f"| {label} | {scenario} | {len(accs)} | {ours} | {theirs} | {statistics.mean(accs) - mean:+.2f} |")
    return out


def curves(runs: list[Result], table: str, loose: set[str] = frozenset()) -> list[str]:
    """The table of the average accuracy over the tasks seen so far after each task (%), ours (the mean
    over seeds) above the paper's, for the rows whose curve the paper's data give; [] for none."""
    paper = load_toml(PUBLISHED / f"{table}.toml").get("curve", {})
    out = []
    for scenario, label, paper_row, mine in compared_rows(runs, table, loose):
        if paper_row in paper.get(scenario, {}):
            seen = [[100 * float(np.nanmean(r.acc[i, : i + 1])) for i in range(r.tasks_run)] for r in mine]
            for who, curve in (("blackout", np.mean(seen, axis=0)), ("published", paper[scenario][paper_row])):
                out.append(f"| {label} | {who} | " + " | ".join(f"{v:.2f}" for v in curve) + " |")
    if not out:
        return []
    tasks = RunConfig.from_flat(run_preset(PRESETS[table]), strict=False).data.tasks
    head = "| row | | " + " | ".join(f"after task {t}" for t in range(1, tasks + 1)) + " |"
    return [head, "| --- | --- |" + " --- |" * tasks, *out]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", nargs="+", help="study folders or archives, their runs pooled")
    p.add_argument("--table", default="hsu2018", choices=sorted(PRESETS))
    p.add_argument("--loose", action="extend", nargs="+", default=[], help="settings not compared (their values are named)")
    args = p.parse_args()
    print("| row | scenario | seeds | blackout | published | difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    runs = [r for study in args.study for r in Study(study).results().runs]
    print("\n".join(rows(runs, args.table, set(args.loose))))
    if lines := curves(runs, args.table, set(args.loose)):
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
