"""Redraw every figure of docs/findings.md from the study archives in docs/studies (no training).

    python docs/analysis/figures.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from blackout.api import Study
from blackout.study import plots
from blackout.study.capacity import analyze
from blackout.study.compare import setting_labels

DOCS = Path(__file__).resolve().parents[1]
STUDIES = DOCS / "studies"


def save(fig, out: str) -> None:
    plots.save_figure(fig, DOCS / out, formats=("png",))


def capacity(name: str, out: str, axis: str = "width") -> None:
    a = analyze(Study(STUDIES / f"{name}.jsonl.gz").results().runs, axis, n_boot=1000)
    save(plots.figure_capacity(a), out)


def stability(name: str, out: str) -> None:
    save(plots.figure_stability(Study(STUDIES / f"{name}.jsonl.gz").results().runs), out)


def product(name: str, out: str) -> None:
    """Blackout task against lr x lambda, log-log, one dot per run (runs without blackout at their bound)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = Study(STUDIES / f"{name}.jsonl.gz").results().runs
    fig = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    by = defaultdict(list)
    for r in runs:
        by[(r.method_settings["lam"], r.config["train"]["lr"])].append(r)
    for (lam, lr), rs in sorted(by.items()):
        x = lam * lr
        ys = [r.verdict.task or r.tasks_run + 1 for r in rs]
        censored = [r.verdict.task is None for r in rs]
        ax.scatter([x] * len(ys), ys, s=12, marker="^" if all(censored) else "o", alpha=0.6,
                   label=f"λ={lam:g}, lr={lr:g}")
    xs = np.geomspace(0.2, 12, 50)
    ax.plot(xs, 17 / xs, "k--", lw=1, label="17 / (lr λ)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("lr × λ")
    ax.set_ylabel("blackout task")
    ax.legend(fontsize=7, ncol=2)
    save(fig, out)


# The keep-learning settings the figures show (of its 48 at each width): the references, the best
# setting of each family, every gated setting, and replay and A-GEM for contrast.
SHOWN = {
    "sgd", "ewc λ=15", "ewc-prox λ=15", "mas λ=0.01", "si λ=0.1", "online-ewc λ=5",
    "online-ewc-prox λ=15 gamma=0.9", "ewc-capped λ=15 cap=1", "l2-init λ=0.001", "shrink-perturb shrink=0.95",
    "cbp replacement_rate=0.0001", "replay memory=1000", "agem memory=1000",
}


# Methods whose every setting is shown: the projection methods and the joint bound.
PROJECTION = {"gpm", "owm", "joint"}
STORED = {"replay", "agem", "gem"}  # keep training samples


# Studies drawn together with the archives that extend them (each archive keeps its own numerics
# version: the projection runs were added later, without changing the older settings' numbers).
EXTENDED = {
    "keep-learning": ("keep-learning", "keep-learning-projection"),
    "keep-learning-long": (
        "keep-learning-long", "keep-learning-long-gpm", "keep-learning-long-owm", "keep-learning-long-projection",
    ),
}


def chosen(name: str, width: int) -> list:
    """The study's runs at this width; of keep-learning's many settings, the SHOWN ones, the gated,
    the projection methods and the joint bound."""
    runs = [r for part in EXTENDED.get(name, (name,)) if (STUDIES / f"{part}.jsonl.gz").is_file()
            for r in Study(STUDIES / f"{part}.jsonl.gz").results().runs if r.hidden == (width,)]
    if name != "keep-learning":
        return runs
    labels = setting_labels(runs)
    return [
        r for r in runs if labels[r.run_id] in SHOWN or r.config["model"].get("gating") or r.method in PROJECTION
    ]


def subspace(name: str, out: str, width: int = 100) -> None:
    save(plots.figure_subspace(chosen(name, width)), out)


def methods(name: str, out: str, width: int = 100) -> None:
    save(plots.figure_methods(chosen(name, width)), out)


def plasticity(name: str, out: str, width: int = 100) -> None:
    save(plots.figure_plasticity(chosen(name, width)), out)


def short(label: str) -> str:
    """A setting's label as the frontier prints it: GPM's thresholds as t / t2, an uncapped or undecayed
    basis unsaid, a cap and a decay as cap / decay."""
    for default in ("max_basis=1 ", "basis_decay=1 "):
        label = label.replace(default, "")
    for name, brief in (("threshold_hidden=", "t2="), ("threshold=", "t="), ("max_basis=", "cap="), ("basis_decay=", "decay=")):
        label = label.replace(name, brief)
    return label


def frontier(name: str, out: str, width: int = 100) -> None:
    """The shown settings that did not black out, by what they keep (average accuracy after 30 tasks)
    against what they can still learn (new-task accuracy at task 30), with the targets of both."""
    from blackout.study.compare import method_table

    rows = [row for row in method_table(chosen(name, width)) if not row["causes"] and row["new_task_acc"] is not None]
    fig, (ax,) = plots._new_figure(8.0, 6.0)
    families = sorted({row["method"] for row in rows})
    colours = dict(zip(families, plots._colours(len(families))))
    for row in rows:
        gated = "xdg" in row["width"]
        if row["method"] == "joint":  # the bound: what this network holds when it may train on everything
            ax.axhline(row["acc@30"], color=colours["joint"], lw=1, ls=":")
        marker = ("s" if gated else "*" if row["method"] == "joint" else "^" if row["method"] in STORED else
                  "D" if row["method"] in PROJECTION else "o")
        ax.scatter(row["new_task_acc"], row["acc@30"], color=colours[row["method"]], marker=marker,
                   s=110 if marker == "*" else 36, edgecolor="black" if gated else "none")
        ax.annotate(short(row["setting"]) + (" xdg" if gated else ""), (row["new_task_acc"], row["acc@30"]),
                    fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.axvline(0.85, color="grey", ls="--", lw=1)
    ax.axhline(0.66, color="grey", ls="--", lw=1)
    ax.set_xlabel(f"accuracy on task 30 just after learning it (width {width}, mean over seeds)")
    ax.set_ylabel("average accuracy over the 30 tasks after task 30")
    ax.set_title("What a setting keeps against what it can still learn\nsquares: gated; triangles: stored samples; "
                 "diamonds: projection;\nstar and dotted line: joint training (the bound)", fontsize=9)
    ax.grid(True, alpha=0.3)
    save(fig, out)


def projection_capacity(out: str) -> None:
    """The projection methods' learning limit (first task learned below 0.85) against width (with width
    100 from keep-learning-projection's runs of the same settings), beside
    EWC's blackout task on the same protocol: dots are runs, open triangles runs censored at their
    bound, lines join the means per width."""
    sys.path.insert(0, str(Path(__file__).parent))
    import projection_capacity as pc

    mine = pc.curves(pc.projection_runs(pc.ARCHIVES), 0.85)
    ewc = pc.curves([r for r in Study(STUDIES / "seed-capacity-10.jsonl.gz").results().runs if r.method == "ewc"], None)
    shown = {f"{m}: first task learned below 0.85": pts for m, pts in sorted(mine.items())}
    shown["ewc λ=15: blackout task"] = ewc["ewc"]
    fig, (ax,) = plots._new_figure(7.0, 4.5)
    for (label, pts), colour in zip(shown.items(), plots._colours(len(shown))):
        widths = sorted({w for w, _, _ in pts})
        for cens, marker in ((False, "o"), (True, "^")):
            xs = [w for w, _, c in pts if c == cens]
            ax.scatter(xs, [y for _, y, c in pts if c == cens], marker=marker, s=14, alpha=0.6,
                       facecolor="none" if cens else colour, edgecolor=colour)
        ax.plot(widths, [np.mean([y for w2, y, _ in pts if w2 == w]) for w in widths], color=colour, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hidden units")
    ax.set_ylabel("task")
    ax.set_title("When a network stops learning (projection) or blacks out (EWC), permuted MNIST", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, out)


def plateau(out: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import plateau as trace

    trace.figure(json.loads((DOCS / "plateau.json").read_text()), DOCS / out)


FIGURES = {
    "seed-capacity": lambda: capacity("seed-capacity-10", "seed-capacity-capacity"),
    "seed-stability": lambda: stability("seed-capacity-10", "seed-capacity-stability"),
    "seed-capacity-full": lambda: capacity("seed-capacity-full", "seed-capacity-full-capacity"),
    "fashion-capacity": lambda: capacity("fashion-capacity", "fashion-capacity-capacity"),
    "stability-grid": lambda: product("stability-grid", "stability-grid-product"),
    "plateau": lambda: plateau("plateau.png"),
}
for study, stem in (("keep-learning", "keep-learning"), ("keep-learning-long", "keep-learning-long")):
    FIGURES[f"{stem}-accuracy"] = lambda s=study, o=stem: methods(s, f"{o}-accuracy")
    FIGURES[f"{stem}-plasticity"] = lambda s=study, o=stem: plasticity(s, f"{o}-plasticity")
FIGURES["keep-learning-frontier"] = lambda: frontier("keep-learning", "keep-learning-frontier")
FIGURES["projection-capacity"] = lambda: projection_capacity("projection-capacity")
FIGURES["keep-learning-subspace"] = lambda: subspace("keep-learning", "keep-learning-subspace")
FIGURES["depth"] = lambda: capacity("depth", "depth-capacity", axis="depth")
FIGURES["demo"] = lambda: capacity("demo", "demo-capacity")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=sorted(FIGURES))
    a = p.parse_args()
    for name in a.only or FIGURES:
        try:
            FIGURES[name]()
            print(f"drew {name}")
        except FileNotFoundError as e:
            print(f"skipped {name}: {e}")


if __name__ == "__main__":
    main()
