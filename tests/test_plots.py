"""Figures are checked for content (labels, one artist per task/run/group, censored points drawn
differently), not only for existing, and their files for being valid PNG and SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from blackout import plots
from blackout.plots import NothingToPlot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"


def make_result(run_id="r0", method="ewc", lam=15.0, width=50, seed=0, tasks=6, blackout=None,
                cause="collapsed", eval_all=False, stability=True):
    """A plausible run: each task learned to ~0.95 then decays; at blackout every task is at chance."""
    rows = blackout if blackout is not None else tasks
    acc = []
    for i in range(rows):
        row = []
        for j in range(tasks):
            if j > i and not eval_all:
                row.append(None)
            elif j > i:
                row.append(0.1)
            elif blackout is not None and i + 1 == blackout:
                row.append(0.1 + 0.02 * (j % 2))
            else:
                row.append(round(0.95 - 0.08 * (i - j), 3))
        acc.append(row)
    diags = [{"task": t, "train_loss": 0.2, "penalty": 0.01 * t, "fisher_mean": 1e-3, "fisher_max": 0.1,
              "importance_max": 1.5 * t, "stability": (0.3 * 1.6 ** t if stability else None),
              "new_task_acc": 0.95, "seconds": 0.5} for t in range(1, rows + 1)]
    return {
        "run_id": run_id, "version": "0.1.0", "seed": seed, "n_params": 64 * width + 10 * width,
        "config": {"data": {"dataset": "digits", "stream": "permuted", "tasks": tasks},
                   "model": {"arch": "mlp", "hidden": [width]},
                   "method": {"method": method, "lam": lam},
                   "train": {"optimizer": "sgd", "lr": 0.1, "seed": seed, "eval_all": eval_all},
                   "blackout": {"margin": 0.1}},
        "data": {"source": "embedded", "note": "", "chance": [0.1] * tasks},
        "acc": acc,
        "diagnostics": diags,
        "metrics": {"avg_acc": float(np.nanmean([v for v in acc[-1][:rows] if v is not None])),
                    "bwt": -0.1, "fwt": 0.0, "forgetting": 0.1, "plasticity": [0.95] * rows},
        "blackout": {"task": blackout, "cause": cause if blackout else None, "retained": 0 if blackout else rows,
                     "retained_tasks": [] if blackout else list(range(1, rows + 1))},
        "tasks_run": rows,
        "timings": {"total": 3.0},
    }


def make_analysis(label="method=ewc lam=15"):
    """Two groups over width; group 0 has a censored point and both fits, group 1 a failed power fit."""
    def group(lbl, slope, censored_at):
        points, summary = [], []
        for x in (25, 50, 100, 400):
            ys = [round(slope * x + 2 + d) for d in (-1, 0, 1)]
            for seed, y in enumerate(ys):
                points.append({"x": x, "y": y, "censored": x == censored_at and seed == 0, "seed": seed,
                               "run_id": f"{lbl}-{x}-{seed}"})
            summary.append({"x": x, "n": 3, "n_censored": int(x == censored_at), "mean": float(np.mean(ys)),
                            "ci_lo": float(np.mean(ys)) - 1.0, "ci_hi": float(np.mean(ys)) + 1.0, "values": ys})
        return {"label": lbl, "key": [lbl], "points": points, "summary": summary,
                "linear": {"slope": slope, "intercept": 2.0, "r2": 0.98, "slope_ci": [slope * 0.8, slope * 1.2],
                           "n": 12, "n_censored": 1 if censored_at else 0, "ok": True, "reason": "", "aic": 10.0},
                "power": {"exponent": 0.9, "coef": 0.2, "r2": 0.97, "exponent_ci": [0.8, 1.0], "ok": True,
                          "reason": "", "aic": 11.0},
                "better": "linear"}

    g0 = group(label, 0.0123, censored_at=400)
    g1 = group("method=si lam=1", 0.02, censored_at=None)
    g1["power"] = {"exponent": None, "coef": None, "r2": None, "exponent_ci": None, "ok": False,
                   "reason": "too few points", "aic": None}
    g1["better"] = None
    return {"axis": "width", "groups": [g0, g1],
            "stability": {"runs": [{"run_id": "a", "first_unstable": 5, "blackout_task": 5, "agree": True}],
                          "share_within_one": 0.8, "n_compared": 10}}


def check_files(paths: list[Path], stem: Path, xlabel: str, ylabel: str) -> ET.Element:
    """Both files exist beside stem; the PNG has its magic; the SVG parses and keeps the axis labels as text."""
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.parent == stem.parent and p.stem == stem.name for p in paths)
    png, svg = paths
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 2000
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG_NS}svg"
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG_NS}text"))
    assert xlabel in text and ylabel in text
    return root


def svg_ids(root: ET.Element) -> set[str]:
    return {e.get("id") for e in root.iter() if e.get("id")}


def gids(fig: Figure, prefix: str) -> list:
    return [a for a in fig.axes[0].get_children() if (a.get_gid() or "").startswith(prefix)]


# -- accuracy matrix ------------------------------------------------------------------------


def test_accuracy_matrix_figure_content():
    res = make_result(tasks=6, blackout=5)
    fig = plots.figure_accuracy_matrix(res)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "task evaluated" and ax.get_ylabel() == "after training task"
    data = ax.images[0].get_array()
    assert data.shape == (5, 6)
    assert data.mask[0, 1] and not data.mask[1, 0]  # not-evaluated cells are blank
    assert data[1, 0] == pytest.approx(0.87)
    cells = [t for t in ax.texts if (t.get_gid() or "").startswith("cell-")]
    assert len(cells) == int((~data.mask).sum()) == 15
    assert gids(fig, "blackout-row")
    assert "5 blackout" in [t.get_text() for t in ax.get_yticklabels()]


def test_accuracy_matrix_files(tmp_path):
    stem = tmp_path / "sub" / "matrix"
    paths = plots.accuracy_matrix(make_result(tasks=4, blackout=4), stem)
    root = check_files(paths, stem, "task evaluated", "after training task")
    assert "blackout-row" in svg_ids(root)


def test_accuracy_matrix_large_has_no_annotations():
    res = make_result(tasks=30)
    ax = plots.figure_accuracy_matrix(res).axes[0]
    assert not [t for t in ax.texts if (t.get_gid() or "").startswith("cell-")]
    assert not gids(plots.figure_accuracy_matrix(res), "blackout-row")


def test_accuracy_matrix_empty_run_says_why():
    res = make_result(tasks=3)
    res["acc"] = []
    with pytest.raises(NothingToPlot, match="no evaluated"):
        plots.figure_accuracy_matrix(res)


# -- task curves ----------------------------------------------------------------------------


def test_task_curves_one_line_per_trained_task():
    res = make_result(tasks=8, blackout=6, eval_all=True)
    fig = plots.figure_task_curves(res)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "tasks trained" and ax.get_ylabel() == "accuracy"
    lines = gids(fig, "task-")
    assert len(lines) == 6  # tasks 7 and 8 were never trained
    x, y = lines[2].get_data()
    assert list(x) == [3, 4, 5, 6]  # starts when task 3 was trained, even with eval_all
    assert y[0] == pytest.approx(0.95) and y[-1] == pytest.approx(0.1)
    chance = gids(fig, "chance")
    assert len(chance) == 1 and chance[0].get_linestyle() == "--" and chance[0].get_ydata()[0] == 0.1
    (vline,) = gids(fig, "blackout")
    assert list(vline.get_xdata()) == [6, 6]
    assert "collapsed" in vline.get_label()


def test_task_curves_files_and_no_blackout(tmp_path):
    res = make_result(tasks=12)
    fig = plots.figure_task_curves(res)
    assert len(gids(fig, "task-")) == 12 and not gids(fig, "blackout")
    stem = tmp_path / "curves"
    root = check_files(plots.task_curves(res, stem), stem, "tasks trained", "accuracy")
    assert {f"task-{j}" for j in range(1, 13)} <= svg_ids(root)


# -- capacity -------------------------------------------------------------------------------


def test_capacity_points_fits_and_censoring():
    analysis = make_analysis()
    fig = plots.figure_capacity(analysis)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "width" and ax.get_ylabel() == "blackout task"
    assert ax.get_xscale() == "log"  # 25..400 spans more than 10x
    (done0,) = gids(fig, "points-0")
    (cens0,) = gids(fig, "censored-0")
    assert isinstance(cens0, PathCollection)
    assert len(done0.get_offsets()) == 11 and len(cens0.get_offsets()) == 1
    assert tuple(cens0.get_offsets()[0]) == (400, round(0.0123 * 400 + 2 - 1))  # drawn at its bound
    assert cens0.get_facecolors().size == 0 or cens0.get_facecolors()[0][3] == 0  # open marker
    assert done0.get_facecolors()[0][3] > 0
    assert not gids(fig, "censored-1") and len(gids(fig, "points-1")[0].get_offsets()) == 12
    (means0,) = gids(fig, "means-0")
    assert len(means0.get_xdata()) == 4
    lin0, pow0, lin1 = gids(fig, "linear-0") + gids(fig, "power-0") + gids(fig, "linear-1")
    assert not gids(fig, "power-1")  # failed fit is not drawn
    assert to_rgb(lin0.get_color()) == to_rgb(pow0.get_color()) == to_rgb(done0.get_facecolors()[0])
    assert lin0.get_ydata()[0] == pytest.approx(0.0123 * 25 + 2)
    assert pow0.get_ydata()[-1] == pytest.approx(0.2 * 400 ** 0.9)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("0.0123" in t and "R² = 0.980" in t and "[better]" in t for t in legend)
    assert any(t.startswith("power") and "^0.9" in t for t in legend)
    assert any("lower bound" in t for t in legend)


def test_capacity_group_colours_differ():
    fig = plots.figure_capacity(make_analysis())
    c0 = to_rgb(gids(fig, "linear-0")[0].get_color())
    c1 = to_rgb(gids(fig, "linear-1")[0].get_color())
    assert c0 != c1


def test_capacity_files(tmp_path):
    stem = tmp_path / "capacity"
    root = check_files(plots.capacity(make_analysis(), stem), stem, "width", "blackout task")
    assert {"censored-0", "points-0", "linear-0", "power-0", "means-0"} <= svg_ids(root)


def test_capacity_handles_missing_values():
    analysis = make_analysis()
    g = analysis["groups"][0]
    g["summary"][0]["ci_lo"] = None
    g["points"][0]["y"] = None
    g["linear"] = None
    g["power"] = {"ok": False}
    fig = plots.figure_capacity(analysis)
    assert len(gids(fig, "points-0")[0].get_offsets()) == 10
    assert not gids(fig, "linear-0") and not gids(fig, "power-0")
    with pytest.raises(NothingToPlot):
        plots.figure_capacity({"axis": "width", "groups": []})
    with pytest.raises(NothingToPlot):
        plots.figure_capacity({})


# -- stability ------------------------------------------------------------------------------


def test_stability_lines_threshold_and_blackouts(tmp_path):
    runs = [make_result("a", tasks=8, blackout=5), make_result("b", seed=1, tasks=8),
            make_result("c", seed=2, tasks=8, blackout=7, stability=False)]
    fig = plots.figure_stability(runs)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "task" and ax.get_ylabel() == "stability number" and ax.get_yscale() == "log"
    lines = gids(fig, "run-")
    assert len(lines) == 2  # the run without stability numbers is left out
    assert len(lines[0].get_xdata()) == 5 and len(lines[1].get_xdata()) == 8
    (s2,) = gids(fig, "s2")
    assert list(s2.get_ydata()) == [2.0, 2.0]
    (mark,) = gids(fig, "blackout-")
    assert list(mark.get_xdata()) == [5] and mark.get_ydata()[0] == pytest.approx(0.3 * 1.6 ** 5)
    stem = tmp_path / "stability"
    root = check_files(plots.stability(runs, stem), stem, "task", "stability number")
    assert {"run-0", "run-1", "s2", "blackout-0"} <= svg_ids(root)
    with pytest.raises(NothingToPlot, match="stability"):
        plots.figure_stability([runs[2]])


# -- methods --------------------------------------------------------------------------------


def test_methods_one_line_per_label_mean_over_seeds(tmp_path):
    runs = [make_result("a", seed=0, tasks=5), make_result("b", seed=1, tasks=5),
            make_result("c", method="si", lam=1.0, tasks=5, blackout=4)]
    runs[1]["acc"][0][0] = 0.85  # seeds differ on task 1
    fig = plots.figure_methods(runs)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "tasks trained" and ax.get_ylabel() == "average accuracy on tasks so far"
    lines = gids(fig, "method-")
    assert [ln.get_label() for ln in lines] == ["ewc λ=15", "si λ=1"]
    ewc, si = lines
    assert len(ewc.get_xdata()) == 5 and len(si.get_xdata()) == 4
    assert ewc.get_ydata()[0] == pytest.approx(0.90)
    assert ewc.get_ydata()[1] == pytest.approx(np.mean([0.87, 0.95]))
    assert gids(fig, "chance")
    stem = tmp_path / "methods"
    root = check_files(plots.methods(runs, stem), stem, "tasks trained", "average accuracy on tasks so far")
    assert {"method-0", "method-1"} <= svg_ids(root)


def test_methods_mixed_datasets_and_widths_are_kept_apart():
    a, b = make_result("a", tasks=3), make_result("b", tasks=3)
    b["config"]["data"]["dataset"] = "mnist"
    labels = [ln.get_label() for ln in gids(plots.figure_methods([a, b]), "method-")]
    assert labels == ["ewc λ=15 (digits)", "ewc λ=15 (mnist)"]
    runs = [make_result(f"w{w}", width=w, tasks=3) for w in (400, 25, 100)]
    labels = [ln.get_label() for ln in gids(plots.figure_methods(runs), "method-")]
    assert labels == ["ewc λ=15 (width 25)", "ewc λ=15 (width 100)", "ewc λ=15 (width 400)"]


def test_average_accuracy_and_labels():
    res = make_result(tasks=3)
    assert plots.average_accuracy(res).tolist() == pytest.approx([0.95, 0.91, 0.87])
    assert plots.run_label(res) == "ewc λ=15, width 50, seed 0"
    res["config"]["model"]["hidden"] = [400, 400]
    assert plots.run_info(res)["width"] == "400×400"
    assert plots.method_label({"config": {}}) == "?"
