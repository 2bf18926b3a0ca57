"""Figures are checked for content against their inputs (one artist per task, run, group or
setting, carrying the input's numbers), not only for existing, and their files for being valid
PNG and SVG that keep their text and artist ids."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from blackout.study import capacity, plots
from blackout.study.analysis import Fit
from blackout.study.plots import NothingToPlot
from tests.factory import make_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"


def decaying(n: int, tasks: int, blackout: int | None = None) -> list[list[float]]:
    """Rows of a run that learns each task to 0.95 and forgets 0.08 a task; at blackout all at 0.1."""
    return [
        [0.1 if blackout and i + 1 == blackout else round(0.95 - 0.08 * (i - j), 3) for j in range(i + 1)]
        for i in range(n)
    ]


def run(hidden=50, seed=0, tasks=6, blackout=None, stability=None, sharpness=None, dead=None, new=None, **kw):
    """A run through ``blackout or tasks`` tasks; diagnostics per task from the given functions of the task."""
    n = blackout or tasks
    acc = kw.pop("acc", None) or decaying(n, tasks, blackout)
    diags = []
    for t in range(1, n + 1):
        d = {"task": t, "train_loss": 0.2}
        for name, f in (
            ("stability", stability),
            ("sharpness", sharpness),
            ("dead_units", dead),
            ("new_task_acc", new),
        ):
            if f is not None:
                d[name] = f(t)
        diags.append(d)
    return make_result(
        acc, tasks=tasks, blackout=blackout, cause="collapsed", diagnostics=diags, hidden=(hidden,), seed=seed, **kw
    )


def gids(fig: Figure, prefix: str, ax: int | None = None) -> list:
    axes = fig.axes if ax is None else [fig.axes[ax]]
    return [a for x in axes for a in x.get_children() if (a.get_gid() or "").startswith(prefix)]


def check_files(paths: list[Path], stem: Path, *texts: str) -> set[str]:
    """Both files beside ``stem``; a real PNG; an SVG that parses and keeps ``texts`` as text. Returns its ids."""
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.parent == stem.parent and p.stem == stem.name for p in paths)
    png, svg = paths
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 2000
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG_NS}svg"
    text = " ".join("".join(t.itertext()) for t in root.iter(f"{SVG_NS}text"))
    for t in texts:
        assert t in text, t
    return {e.get("id") for e in root.iter() if e.get("id")}


# -- one run --------------------------------------------------------------------------------


def test_accuracy_matrix_shows_each_evaluated_cell_and_the_blackout_row(tmp_path):
    r = run(tasks=6, blackout=5)
    fig = plots.figure_accuracy_matrix(r)
    ax = fig.axes[0]
    data = ax.images[0].get_array()
    assert data.shape == (5, 6)
    assert data.mask.tolist() == np.isnan(r.acc).tolist()  # not-evaluated cells are blank
    assert np.allclose(data.filled(np.nan), r.acc, equal_nan=True)
    cells = {t.get_gid(): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("cell-")}
    expected = {f"cell-{i + 1}-{j + 1}": f"{v:.2f}" for (i, j), v in np.ndenumerate(r.acc) if not np.isnan(v)}
    assert cells == expected and len(cells) == 15
    (row,) = gids(fig, "blackout-row")
    assert row.get_y() == pytest.approx(5 - 1.5)
    assert "5 blackout" in [t.get_text() for t in ax.get_yticklabels()]
    stem = tmp_path / "sub" / "matrix"
    ids = check_files(plots.accuracy_matrix(r, stem), stem, "task evaluated", "after training task")
    assert {"blackout-row", "cell-5-1"} <= ids


def test_accuracy_matrix_without_blackout_or_numbers():
    big = plots.figure_accuracy_matrix(run(tasks=30))
    assert not [t for t in big.axes[0].texts if (t.get_gid() or "").startswith("cell-")]  # too many cells to label
    assert not gids(big, "blackout-row")
    with pytest.raises(NothingToPlot, match="no evaluated accuracies"):
        plots.figure_accuracy_matrix(make_result([[None, None]]))


def test_task_curves_follow_each_task_from_when_it_was_trained(tmp_path):
    r = run(tasks=8, blackout=6)
    fig = plots.figure_task_curves(r)
    lines = gids(fig, "task-")
    assert len(lines) == 6  # tasks 7 and 8 were never trained
    x, y = lines[2].get_data()
    assert list(x) == [3, 4, 5, 6] and list(y) == pytest.approx(r.acc[2:, 2].tolist())
    (chance,) = gids(fig, "chance")
    assert chance.get_linestyle() == "--" and chance.get_ydata()[0] == pytest.approx(r.data["chance"][0])
    (vline,) = gids(fig, "blackout")
    assert list(vline.get_xdata()) == [6, 6] and "collapsed" in vline.get_label()
    stem = tmp_path / "curves"
    ids = check_files(plots.task_curves(r, stem), stem, "tasks trained", "accuracy", "task 6")
    assert {f"task-{j}" for j in range(1, 7)} | {"blackout", "chance"} <= ids


def test_run_label_names_setting_network_and_seed():
    assert plots.run_label(run(hidden=64, seed=3, lam=5.0)) == "ewc λ=5, network 64, seed 3"


# -- capacity -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analysis():
    """Two groups (two λ) over widths; the widest nets never black out (censored)."""
    runs = [
        run(hidden=w, seed=s, tasks=8, blackout={25: 3, 50: 4, 100: 6}.get(w), lam=lam)
        for lam in (5.0, 15.0)
        for w in (25, 50, 100, 400)
        for s in (0, 1)
    ]
    return capacity.analyze(runs, "width", n_boot=20)


def test_capacity_draws_points_bounds_means_and_laws(analysis, tmp_path):
    fig = plots.figure_capacity(analysis)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"  # 25..400 spans more than 10x
    for gi, g in enumerate(analysis.groups):
        done = [(p.x, p.y) for p in g.points if not p.censored]
        cens = [(p.x, p.y) for p in g.points if p.censored]
        (pts,) = gids(fig, f"points-{gi}")
        (open_,) = gids(fig, f"censored-{gi}")
        assert isinstance(open_, PathCollection)
        assert sorted(map(tuple, pts.get_offsets().tolist())) == sorted(done)
        assert sorted(map(tuple, open_.get_offsets().tolist())) == sorted(cens) == [(400, 9), (400, 9)]
        assert open_.get_facecolors().size == 0 or open_.get_facecolors()[0][3] == 0  # open marker
        (means,) = gids(fig, f"means-{gi}")
        assert list(means.get_ydata()) == pytest.approx([s.mean for s in g.summary])
        (lin,) = gids(fig, f"linear-{gi}")
        x, y = lin.get_data()
        assert y == pytest.approx(g.linear.b * x + g.linear.a)
        (pw,) = gids(fig, f"power-{gi}")
        x, y = pw.get_data()
        assert y == pytest.approx(g.power.a * x**g.power.b)
        assert to_rgb(lin.get_color()) == to_rgb(pw.get_color()) == to_rgb(pts.get_facecolors()[0][:3])
    assert to_rgb(gids(fig, "linear-0")[0].get_color()) != to_rgb(gids(fig, "linear-1")[0].get_color())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [g.label for g in analysis.groups] == ["lam=5", "lam=15"]
    assert {"lam=5", "lam=15"} <= set(legend) and any("lower bound" in t for t in legend)
    better = analysis.groups[0].better
    assert any(t.startswith(better) and "[better]" in t for t in legend)
    stem = tmp_path / "capacity"
    ids = check_files(plots.capacity(analysis, stem), stem, "width", "blackout task", "lam=15")
    assert {"points-0", "censored-0", "means-0", "linear-0", "power-1"} <= ids


def test_capacity_leaves_out_what_is_missing(analysis):
    g = analysis.groups[0]
    g = dataclasses.replace(
        g,
        points=[dataclasses.replace(p, y=None) if i == 0 else p for i, p in enumerate(g.points)],
        linear=Fit.of("linear", {"ok": False, "slope": None, "intercept": None, "reason": "too few points"}),
    )
    broken = dataclasses.replace(analysis, groups=[g, *analysis.groups[1:]])
    fig = plots.figure_capacity(broken)
    assert len(gids(fig, "points-0")[0].get_offsets()) == 5  # 8 points, 2 censored, 1 without a value
    assert not gids(fig, "linear-0") and gids(fig, "power-0") and gids(fig, "linear-1")
    with pytest.raises(NothingToPlot, match="no data points"):
        plots.figure_capacity(dataclasses.replace(analysis, groups=[]))


# -- stability and sharpness ----------------------------------------------------------------


def test_stability_per_task_with_limit_and_blackout_crosses(tmp_path):
    runs = [
        run(tasks=8, blackout=5, stability=lambda t: 0.3 * 1.6**t),
        run(seed=1, tasks=8, stability=lambda t: 0.1 * t),
        run(seed=2, tasks=8, blackout=7),
    ]  # no stability number: left out
    fig = plots.figure_stability(runs)
    assert len(fig.axes) == 1  # nobody measured sharpness
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "task"
    a, b = gids(fig, "stability-")
    assert list(a.get_xdata()) == [1, 2, 3, 4, 5] and list(a.get_ydata()) == pytest.approx(
        [0.3 * 1.6**t for t in range(1, 6)]
    )
    assert list(b.get_ydata()) == pytest.approx([0.1 * t for t in range(1, 9)])
    (limit,) = gids(fig, "limit-stability")
    assert list(limit.get_ydata()) == [2.0, 2.0] and limit.get_linestyle() == "--"
    (cross,) = gids(fig, "blackout-")
    assert cross.get_gid() == "blackout-stability-0" and cross.get_marker() == "X"
    assert list(cross.get_xdata()) == [5] and cross.get_ydata()[0] == pytest.approx(0.3 * 1.6**5)
    stem = tmp_path / "stability"
    ids = check_files(plots.stability(runs, stem), stem, "task", "stability number", "blackout task")
    assert {"stability-0", "stability-1", "limit-stability", "blackout-stability-0"} <= ids
    with pytest.raises(NothingToPlot, match="stability number or sharpness"):
        plots.figure_stability([runs[2]])


def test_sharpness_is_drawn_beside_the_stability_number(tmp_path):
    runs = [
        run(tasks=6, blackout=4, stability=lambda t: 0.5 * t, sharpness=lambda t: 0.4 * t + 0.1),
        run(seed=1, tasks=6, sharpness=lambda t: 0.3),
    ]  # sharpness only
    fig = plots.figure_stability(runs)
    assert len(fig.axes) == 2 and all(ax.get_yscale() == "log" for ax in fig.axes)
    assert "stability" in fig.axes[0].get_ylabel() and "sharpness" in fig.axes[1].get_ylabel()
    assert fig.axes[0].get_shared_x_axes().joined(fig.axes[0], fig.axes[1])  # the same tasks side by side
    assert [ln.get_gid() for ln in gids(fig, "stability-", ax=0)] == ["stability-0"]
    s0, s1 = gids(fig, "sharpness-", ax=1)
    assert list(s0.get_ydata()) == pytest.approx([0.4 * t + 0.1 for t in range(1, 5)])
    assert list(s1.get_xdata()) == list(range(1, 7)) and set(s1.get_ydata()) == {0.3}
    assert to_rgb(s0.get_color()) == to_rgb(gids(fig, "stability-0")[0].get_color())  # one colour per run
    assert to_rgb(s0.get_color()) != to_rgb(s1.get_color())
    (cross,) = gids(fig, "blackout-sharpness-")
    assert list(cross.get_xdata()) == [4] and cross.get_ydata()[0] == pytest.approx(1.7)
    assert gids(fig, "limit-sharpness")[0].get_ydata()[0] == 2.0
    stem = tmp_path / "both"
    ids = check_files(plots.stability(runs, stem), stem, "sharpness", "stability number", "Sharpness per task")
    assert {"sharpness-0", "sharpness-1", "stability-0", "blackout-sharpness-0", "limit-sharpness"} <= ids
    only = plots.figure_stability([runs[1]])
    assert len(only.axes) == 1 and "sharpness" in only.axes[0].get_ylabel()


def test_many_runs_are_drawn_as_one_artist_of_each_kind(tmp_path):
    """Past the legend's limit the runs' lines, points and blackout crosses are collections that hold
    exactly what one artist per run would: each run's points in run order, in its own colour."""
    n = plots.LEGEND_MAX_RUNS + 2
    runs = [
        run(seed=k, tasks=8, blackout=5 if k % 3 == 0 else None, stability=lambda t, k=k: 0.2 * (1 + k / n) * 1.5**t)
        for k in range(n)
    ]
    fig = plots.figure_stability(runs)
    (lines,) = gids(fig, "stability-runs")
    assert isinstance(lines, LineCollection)
    for k, (r, seg) in enumerate(zip(runs, lines.get_segments())):
        tasks = r.blackout_task or 8
        expected = [(t, 0.2 * (1 + k / n) * 1.5**t) for t in range(1, tasks + 1)]
        assert np.allclose(seg, expected)
    colours = [tuple(c) for c in lines.get_colors()]
    assert len(set(colours)) == n
    (points,) = gids(fig, "stability-points")
    assert len(points.get_offsets()) == sum(len(s) for s in lines.get_segments())
    (crosses,) = gids(fig, "blackout-stability")
    blacked = [k for k, r in enumerate(runs) if r.blackout_task]
    assert np.allclose(crosses.get_offsets(), [(5, 0.2 * (1 + k / n) * 1.5**5) for k in blacked])
    assert [tuple(c) for c in crosses.get_edgecolors()] == [colours[k] for k in blacked]
    assert not gids(fig, "stability-0")  # no per-run artists
    stem = tmp_path / "many"
    ids = check_files(plots.stability(runs, stem), stem, "task", "stability number")
    assert {"stability-runs", "stability-points", "blackout-stability", "limit-stability"} <= ids


# -- across settings ------------------------------------------------------------------------


def avg_so_far(acc: list[list[float]]) -> list[float]:
    return [float(np.mean(row[: i + 1])) for i, row in enumerate(acc)]


def test_methods_one_line_per_setting_mean_over_seeds(tmp_path):
    a, b = decaying(5, 5), decaying(5, 5)
    b[0][0], b[3][1] = 0.85, 0.5  # the seeds differ
    si = decaying(4, 5, blackout=4)
    runs = [
        run(seed=0, tasks=5, acc=a),
        run(seed=1, tasks=5, acc=b),
        run(tasks=5, blackout=4, method="si", lam=1.0, acc=si),
    ]
    fig = plots.figure_methods(runs)
    ewc, si_line = gids(fig, "method-")
    assert [ewc.get_label(), si_line.get_label()] == ["ewc λ=15", "si λ=1"]
    assert list(ewc.get_ydata()) == pytest.approx(np.mean([avg_so_far(a), avg_so_far(b)], axis=0).tolist())
    assert list(si_line.get_xdata()) == [1, 2, 3, 4] and list(si_line.get_ydata()) == pytest.approx(avg_so_far(si))
    assert gids(fig, "chance")[0].get_ydata()[0] == pytest.approx(0.1)
    stem = tmp_path / "methods"
    ids = check_files(plots.methods(runs, stem), stem, "tasks trained", "average accuracy on tasks so far", "si λ=1")
    assert {"method-0", "method-1", "chance"} <= ids


def test_networks_that_differ_are_kept_apart_in_width_order():
    runs = [run(hidden=w, tasks=3) for w in (400, 25, 100)]
    labels = [ln.get_label() for ln in gids(plots.figure_methods(runs), "method-")]
    assert labels == ["ewc λ=15, network 25", "ewc λ=15, network 100", "ewc λ=15, network 400"]


def test_plasticity_new_task_accuracy_and_dead_units(tmp_path):
    runs = [
        run(hidden=50, seed=0, new=lambda t: 0.9 - 0.1 * t, dead=lambda t: 0.05 * t),
        run(hidden=50, seed=1, new=lambda t: 0.8 - 0.1 * t, dead=lambda t: 0.03 * t),
        run(hidden=100, seed=0, blackout=3, new=lambda t: 0.95, dead=lambda t: 0.0),
    ]
    fig = plots.figure_plasticity(runs)
    assert [ax.get_title() for ax in fig.axes] == ["New-task accuracy", "Dead units"]
    n50, n100 = gids(fig, "new-task-", ax=0)
    assert n50.get_label() == "ewc λ=15, network 50"
    assert list(n50.get_ydata()) == pytest.approx([0.85 - 0.1 * t for t in range(1, 7)])  # mean of the two seeds
    assert list(n100.get_xdata()) == [1, 2, 3] and set(n100.get_ydata()) == {0.95}
    d50, d100 = gids(fig, "dead-units-", ax=1)
    assert list(d50.get_ydata()) == pytest.approx([0.04 * t for t in range(1, 7)])
    assert to_rgb(d50.get_color()) == to_rgb(n50.get_color()) != to_rgb(d100.get_color())
    stem = tmp_path / "plasticity"
    ids = check_files(
        plots.plasticity(runs, stem), stem, "accuracy on the new task", "fraction of dead hidden units", "Dead units"
    )
    assert {"new-task-0", "new-task-1", "dead-units-0", "dead-units-1"} <= ids


def test_plasticity_skips_a_panel_without_data_and_says_why_when_empty():
    fig = plots.figure_plasticity([run(new=lambda t: 0.9), run(seed=1, new=lambda t: 0.7)])
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "New-task accuracy"
    assert list(gids(fig, "new-task-0")[0].get_ydata()) == pytest.approx([0.8] * 6)
    fig = plots.figure_plasticity([run(dead=lambda t: 0.1)])
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "Dead units"
    with pytest.raises(NothingToPlot, match="new-task accuracy or dead units"):
        plots.figure_plasticity([run()])
    with pytest.raises(NothingToPlot, match="evaluated accuracies"):
        plots.figure_methods([])


def test_png_bytes_is_a_png():
    assert plots.png_bytes(plots.figure_task_curves(run(tasks=3)))[:8] == PNG_MAGIC


def test_subspace_use_per_layer_is_the_mean_over_seeds_of_each_projection_setting(tmp_path):
    def projecting(seed, use, **kw):
        r = run(seed=seed, tasks=3, **kw)
        for d, u in zip(r.diagnostics, use):
            d["subspace_use"] = u
        return r

    runs = [
        projecting(0, [[0.1, 0.4], [0.2, 0.6], [0.3, 0.9]], method="gpm"),
        projecting(1, [[0.3, 0.2], [0.4, 0.4], [0.5, 0.7]], method="gpm"),
        projecting(0, [[0.05, 0.5], [0.1, 0.5], [0.15, 0.5]], method="owm", alpha=1.0),
        run(seed=0, tasks=3),  # records none: left out, not drawn at zero
    ]
    fig = plots.figure_subspace(runs)
    assert [ax.get_title() for ax in fig.axes] == ["layer 1", "layer 2 (output)"]
    first = gids(fig, "subspace-0-", ax=0)
    assert [ln.get_label() for ln in first] == ["gpm", "owm"]
    assert list(first[0].get_ydata()) == pytest.approx([0.2, 0.3, 0.4])
    assert list(gids(fig, "subspace-1-", ax=1)[0].get_ydata()) == pytest.approx([0.3, 0.5, 0.8])
    assert list(gids(fig, "subspace-1-", ax=1)[1].get_ydata()) == pytest.approx([0.5] * 3)
    ids = check_files(plots.subspace(runs, tmp_path / "subspace"), tmp_path / "subspace", "layer 2 (output)")
    assert {"subspace-0-0", "subspace-1-1"} <= ids
    with pytest.raises(NothingToPlot, match="subspace use"):
        plots.figure_subspace([run()])
