"""Figures of runs and studies, written as PNG (for reading) and SVG (for papers) side by side.

Every figure has two entry points: ``figure_<name>(...) -> Figure`` builds it (tests and the
HTML report use this), and ``<name>(..., stem) -> [stem.png, stem.svg]`` builds and saves it.
Figures are plain ``matplotlib.figure.Figure`` objects on an Agg canvas, never registered with
pyplot, so nothing global changes, nothing needs a display and nothing is left open.

Plotted artists carry a ``gid`` (``task-3``, ``censored-0``, ``stability-1`` ...), which becomes
the ``id`` of their group in the SVG, so both the Figure and the SVG can be checked for content.
A figure that has nothing to show raises ``NothingToPlot`` with a sentence saying why.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, StrMethodFormatter

from ..experiment.forecast import LIMIT as STABLE_LIMIT
from ..experiment.result import Result, finite_or_none
from .analysis import Analysis, Fit, ForecastCheck
from .compare import run_label, settings_of
from .figfile import KEY_PREFIX

DPI = 120
BLACKOUT_COLOUR = "crimson"
ANNOTATE_MAX_CELLS = 150
LEGEND_MAX_RUNS = 12


class NothingToPlot(ValueError):
    """The data cannot make this figure; the message says why, in one sentence."""


# -- labels and series ----------------------------------------------------------------------


def average_accuracy(r: Result) -> list[float | None]:
    """Mean accuracy over the tasks seen so far after each task (row i: tasks 1..i+1)."""
    out = []
    for i in range(r.tasks_run):
        seen = [v for v in (finite_or_none(a) for a in r.acc[i, : i + 1]) if v is not None]
        out.append(sum(seen) / len(seen) if seen else None)
    return out


def mean_over_seeds(series: list[list[float | None]]) -> np.ndarray:
    """Per task, the mean over the runs that have a value there; NaN where none has."""
    n = max((len(s) for s in series), default=0)
    out = np.full(n, np.nan)
    for i in range(n):
        vals = [v for s in series if i < len(s) and (v := s[i]) is not None]
        if vals:
            out[i] = float(np.mean(vals))
    return out


def _chance(r: Result) -> list[float]:
    return sorted({round(v, 6) for v in (finite_or_none(c) for c in r.data.get("chance") or []) if v is not None})


def _colours(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"]
    return [cmap(i) for i in range(n)] if n <= 20 else [cmap(v) for v in np.linspace(0.05, 0.95, n)]


def _new_figure(width: float = 7.0, height: float = 4.5, panels: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(np.atleast_1d(fig.subplots(1, panels, sharex=True)))


def _legend_outside(ax, **kw) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), **kw)


def _legend_all(axes: list) -> None:
    """One legend, outside the last panel, naming every labelled artist of every panel once."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, text in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(text, h)
    _legend_outside(axes[-1], handles=list(seen.values()), labels=list(seen))


# -- saving ---------------------------------------------------------------------------------


def save_figure(
    fig: Figure, stem: Path | str, formats: Iterable[str] = ("png", "svg"), key: str | None = None
) -> list[Path]:
    """Write ``stem.<fmt>`` for each format; SVG keeps its text as text so it stays searchable.

    The figure is drawn at its own size: its constrained layout already makes room for labels and
    legends outside the axes, so no tight bounding box is computed (that costs a second drawing per
    file). The first format's drawing lays it out and the layout is then held, so a second format
    draws the same figure without laying it out again. ``key`` (32 hex digits), when given, is written
    into each file's metadata (``figfile.figure_key`` reads it back), so a later report can tell the figure is
    current.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        if fmt == "svg":
            meta = {"Date": None, "Creator": "blackout", **({"Identifier": KEY_PREFIX + key} if key else {})}
        else:
            meta = {"Software": "blackout", **({"Source": KEY_PREFIX + key} if key else {})}
        if fmt == "png":
            _png(fig, path, meta)
        else:
            with rc_context({"svg.fonttype": "none", "svg.hashsalt": "blackout"}):
                fig.savefig(path, format=fmt, dpi=DPI, metadata=meta)
        fig.set_layout_engine("none")  # keeps the positions the first drawing computed
        paths.append(path)
    fig.clear()
    return paths


def _png(fig: Figure, target: Any, metadata: dict) -> None:
    if not isinstance(fig.canvas, FigureCanvasAgg):  # a figure from elsewhere, without a raster canvas
        fig.savefig(target, format="png", dpi=DPI, metadata=metadata)
        return
    # one pass lays the figure out and renders it (``savefig`` lays it out in a drawing of its own first)
    fig.canvas.draw()
    imsave(target, fig.canvas.buffer_rgba(), format="png", dpi=DPI, metadata=metadata)


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, for embedding in a report."""
    buf = io.BytesIO()
    _png(fig, buf, {"Software": "blackout"})
    fig.clear()
    return buf.getvalue()


def _saver(build: Callable[[Any], Figure], what: str) -> Callable[[Any, Path | str], list[Path]]:
    def save(arg: Any, stem: Path | str) -> list[Path]:
        return save_figure(build(arg), stem)

    save.__doc__ = f"Save the {what} as ``stem.png`` and ``stem.svg``."
    return save


# -- one run --------------------------------------------------------------------------------


def figure_accuracy_matrix(r: Result) -> Figure:
    """Heatmap of R: forgetting shows as fading columns, blackout as a row at chance everywhere."""
    acc = r.acc
    rows, cols = acc.shape
    if rows == 0 or cols == 0 or np.isnan(acc).all():
        raise NothingToPlot("the run has no evaluated accuracies")
    small = rows * cols <= ANNOTATE_MAX_CELLS
    cell = 0.45 if small else 0.22
    fig, (ax,) = _new_figure(min(12.0, max(4.5, 1.8 + cell * cols)), min(12.0, max(3.5, 1.4 + cell * rows)))
    cmap = colormaps["viridis"].with_extremes(bad=(1, 1, 1, 0))
    image = ax.imshow(np.ma.masked_invalid(acc), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    image.set_gid("matrix")
    fig.colorbar(image, ax=ax, label="accuracy", shrink=0.9)
    if small:
        for (i, j), v in np.ndenumerate(acc):
            if not np.isnan(v):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v < 0.6 else "black",
                    gid=f"cell-{i + 1}-{j + 1}",
                )
    step = max(1, math.ceil(max(rows, cols) / 25))
    ax.set_xticks(range(0, cols, step), [str(j + 1) for j in range(0, cols, step)])
    ylabels = [str(i + 1) for i in range(rows)]
    yticks = set(range(0, rows, step))
    b = r.blackout_task
    if b is not None and 1 <= b <= rows:
        ylabels[b - 1] = f"{b} blackout"
        yticks.add(b - 1)
        ax.add_patch(
            Rectangle((-0.5, b - 1.5), cols, 1, fill=False, edgecolor=BLACKOUT_COLOUR, linewidth=2, gid="blackout-row")
        )
    ax.set_yticks(sorted(yticks), [ylabels[i] for i in sorted(yticks)])
    ax.set_xlabel("task evaluated")
    ax.set_ylabel("after training task")
    ax.set_title(f"Accuracy matrix: {run_label(r)}", fontsize=10)
    return fig


def figure_task_curves(r: Result) -> Figure:
    """Each task's accuracy from when it was trained on, as in the EWC paper's permuted-MNIST figure."""
    acc = r.acc
    rows = acc.shape[0]
    if rows == 0 or np.isnan(acc).all():
        raise NothingToPlot("the run has no evaluated accuracies")
    fig, (ax,) = _new_figure()
    trained = min(rows, acc.shape[1])
    colours = _colours(trained) if trained <= 10 else [colormaps["viridis"](v) for v in np.linspace(0, 1, trained)]
    for j in range(trained):
        x, y = np.arange(j + 1, rows + 1), acc[j:, j]
        keep = ~np.isnan(y)
        ax.plot(
            x[keep],
            y[keep],
            color=colours[j],
            marker="o" if rows <= 30 else None,
            markersize=3,
            linewidth=1.4,
            label=f"task {j + 1}",
            gid=f"task-{j + 1}",
        )
    for k, c in enumerate(_chance(r)):
        ax.axhline(
            c,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=None if k else "chance",
            gid=f"chance-{k}" if k else "chance",
        )
    b = r.blackout_task
    if b is not None:
        cause = f", {r.verdict.cause}" if r.verdict.cause else ""
        ax.axvline(
            b, color=BLACKOUT_COLOUR, linestyle=":", linewidth=1.6, gid="blackout", label=f"blackout (task {b}{cause})"
        )
    ax.set_xlim(0.5, rows + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("tasks trained")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy of each task through the sequence: {run_label(r)}", fontsize=10)
    if trained <= 10:
        _legend_outside(ax)
    else:
        handles = [h for h in ax.get_lines() if h.get_gid() in ("chance", "blackout")]
        if handles:
            ax.legend(handles=handles, fontsize=7, loc="lower left")
        scale = ScalarMappable(norm=Normalize(0.5, trained + 0.5), cmap=colormaps["viridis"].resampled(trained))
        fig.colorbar(scale, ax=ax, label="task")
    return fig


# -- capacity -------------------------------------------------------------------------------


def _law_label(fit: Fit, axis: str) -> str | None:
    a, b, r2 = (finite_or_none(v) for v in (fit.a, fit.b, fit.r2))
    if a is None or b is None or not fit.ok:
        return None
    if fit.kind == "linear":
        text = f"linear: y = {b:.3g}·{axis} {'+' if a >= 0 else '−'} {abs(a):.3g}"
    else:
        text = f"power: y = {a:.3g}·{axis}^{b:.3g}"
    return text + (f" (R² = {r2:.3f})" if r2 is not None else "")


def figure_capacity(analysis: Analysis) -> Figure:
    """Blackout task against the capacity axis: the data, the group means and both fitted laws
    (``capacity.analyze`` output)."""
    groups, axis = analysis.groups, analysis.axis
    xs_all = [x for g in groups for p in g.points if (x := finite_or_none(p.x)) is not None]
    if not xs_all:
        raise NothingToPlot("the analysis has no data points")
    log_x = min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 10
    fig, (ax,) = _new_figure(8.0, 5.0)
    any_censored = any_mean = False
    for gi, (g, colour) in enumerate(zip(groups, _colours(len(groups)))):
        label = g.label or f"group {gi + 1}"
        pts = [
            (x, y, p.censored)
            for p in g.points
            if (x := finite_or_none(p.x)) is not None and (y := finite_or_none(p.y)) is not None
        ]
        done = [(x, y) for x, y, c in pts if not c]
        cens = [(x, y) for x, y, c in pts if c]
        if done:
            ax.scatter(
                *zip(*done), s=22, color=colour, alpha=0.55, linewidths=0, gid=f"points-{gi}", label=label, zorder=3
            )
        if cens:
            any_censored = True
            ax.scatter(
                *zip(*cens),
                s=40,
                marker="^",
                facecolors="none",
                edgecolors=colour,
                linewidths=1.2,
                gid=f"censored-{gi}",
                label=None if done else label,
                zorder=3,
            )
        summ = [
            (s.x, m, s.ci_lo, s.ci_hi)
            for s in g.summary
            if s.x is not None and (m := finite_or_none(s.mean)) is not None
        ]
        if summ:
            any_mean = True
            sx, sm = np.array([s[0] for s in summ]), np.array([s[1] for s in summ])
            err = np.array(
                [
                    [m - lo if lo is not None else 0.0 for _, m, lo, _ in summ],
                    [hi - m if hi is not None else 0.0 for _, m, _, hi in summ],
                ]
            )
            bars = ax.errorbar(
                sx,
                sm,
                yerr=np.clip(err, 0, None),
                fmt="s",
                color=colour,
                markersize=6,
                capsize=3,
                linewidth=1.2,
                zorder=4,
            )
            bars.lines[0].set_gid(f"means-{gi}")
            for k, coll in enumerate(bars.lines[2]):
                coll.set_gid(f"ci-{gi}-{k}")
        gx = [x for x, _, _ in pts] or [s[0] for s in summ]
        if not gx or min(gx) == max(gx):
            continue
        line_x = np.geomspace(min(gx), max(gx), 200) if log_x else np.linspace(min(gx), max(gx), 200)
        for law, style in ((g.linear, "-"), (g.power, "--")):
            if (text := _law_label(law, axis)) and (law.kind == "linear" or min(gx) > 0):
                ax.plot(
                    line_x,
                    law.at(line_x),
                    color=colour,
                    linewidth=1.5,
                    linestyle=style,
                    label=text + (" [better]" if g.better == law.kind else ""),
                    gid=f"{law.kind}-{gi}",
                )
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    distinct = sorted(set(xs_all))
    if len(distinct) <= 12:
        ax.set_xticks(distinct, [f"{x:g}" for x in distinct])
    handles, labels = ax.get_legend_handles_labels()
    proxies = [Line2D([], [], marker="o", color="grey", alpha=0.55, linestyle="none", label="one seed")]
    if any_censored:
        proxies.append(
            Line2D(
                [],
                [],
                marker="^",
                markerfacecolor="none",
                markeredgecolor="grey",
                linestyle="none",
                label="no blackout by the last task (lower bound)",
            )
        )
    if any_mean:
        proxies.append(Line2D([], [], marker="s", color="grey", label="mean with interval"))
    _legend_outside(ax, handles=handles + proxies, labels=labels + [p.get_label() for p in proxies])
    ax.set_xlabel(axis)
    ax.set_ylabel("blackout task")
    ax.set_title(f"Blackout task vs {axis}")
    ax.grid(True, alpha=0.3)
    return fig


# -- stability and sharpness ----------------------------------------------------------------

CURVATURES = {
    "stability": "stability number (lr·λ·max importance)",
    "sharpness": "sharpness (lr × top Hessian eigenvalue)",
}


def _stability_lines(ax, name: str, series: dict[int, list[tuple[int, float]]], runs, colours, labels) -> None:
    """One line per run (``{name}-{k}``), with its blackout cross or, off the line, a dotted rule."""
    for k, pts in series.items():
        t, s = zip(*pts)
        ax.plot(
            t,
            s,
            color=colours[k],
            linewidth=1.3,
            marker="o" if len(t) <= 30 else None,
            markersize=3,
            label=labels[k],
            gid=f"{name}-{k}",
        )
        b = runs[k].blackout_task
        at = dict(pts).get(b) if b is not None else None
        if at is not None:
            ax.plot(
                [b],
                [at],
                marker="X",
                markersize=10,
                color=BLACKOUT_COLOUR,
                markeredgecolor=colours[k],
                linestyle="none",
                gid=f"blackout-{name}-{k}",
            )
        elif b is not None:
            ax.axvline(b, color=colours[k], linestyle=":", linewidth=1.2, gid=f"blackout-{name}-{k}")


def _stability_collections(ax, name: str, series: dict[int, list[tuple[int, float]]], runs, colours) -> None:
    """The same marks as ``_stability_lines`` for many runs, as one artist of each kind: the runs'
    lines (``{name}-runs``, in run order), their points, the blackout crosses (``blackout-{name}``)
    and the rules of blackouts off the line (``blackout-{name}-rules``). Thousands of artists of one
    line each would take seconds to draw; a collection draws them at once."""
    ks = list(series)
    ax.add_collection(
        LineCollection([series[k] for k in ks], colors=[colours[k] for k in ks], linewidths=1.3, gid=f"{name}-runs"),
        autolim=True,
    )
    ax.autoscale_view()
    dots = [(t, v, colours[k]) for k in ks if len(series[k]) <= 30 for t, v in series[k]]
    if dots:
        t, v, c = zip(*dots)
        ax.scatter(t, v, s=16, c=list(c), linewidths=0, gid=f"{name}-points", zorder=2.5)
    crosses, rules = [], []
    for k in ks:
        b = runs[k].blackout_task
        at = dict(series[k]).get(b) if b is not None else None
        if at is not None:
            crosses.append((b, at, colours[k]))
        elif b is not None:
            rules.append((b, colours[k]))
    if crosses:
        t, v, c = zip(*crosses)
        ax.scatter(t, v, s=100, marker="X", color=BLACKOUT_COLOUR, edgecolors=list(c), gid=f"blackout-{name}", zorder=3)
    if rules:
        b, c = zip(*rules)
        ax.vlines(
            b,
            0,
            1,
            transform=ax.get_xaxis_transform(),
            colors=list(c),
            linestyles=":",
            linewidths=1.2,
            gid=f"blackout-{name}-rules",
        )


def figure_stability(results: list[Result]) -> Figure:
    """Stability number per task on a log scale against 2, where gradient descent stops being stable.

    When runs recorded the sharpness of the penalised loss (the curvature actually met, of which
    the stability number is a bound from the penalty alone), it gets a panel of its own beside
    it, on the same tasks and the same limit, so the two can be read against each other.
    """
    series: dict[str, dict[int, list[tuple[int, float]]]] = {name: {} for name in CURVATURES}
    runs: list[Result] = []
    for r in results:
        got = {
            name: [(t + 1, v) for t, v in enumerate(r.diagnostic(name)) if v is not None and v > 0]
            for name in CURVATURES
        }
        if any(got.values()):
            for name, pts in got.items():
                if pts:
                    series[name][len(runs)] = pts
            runs.append(r)
    panels = [name for name in CURVATURES if series[name]]
    if not panels:
        raise NothingToPlot("no run recorded a positive stability number or sharpness")
    fig, axes = _new_figure(8.0 if len(panels) == 1 else 12.0, 4.8, len(panels))
    colours = _colours(len(runs))
    labels = [run_label(r) for r in runs] if len(runs) <= LEGEND_MAX_RUNS else [None] * len(runs)
    for name, ax in zip(panels, axes):
        if len(runs) <= LEGEND_MAX_RUNS:
            _stability_lines(ax, name, series[name], runs, colours, labels)
        else:
            _stability_collections(ax, name, series[name], runs, colours)
        ax.axhline(
            STABLE_LIMIT,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"limit {STABLE_LIMIT:g}",
            gid=f"limit-{name}",
        )
        ax.set_yscale("log")
        # plain 0.5, 1, 2, 5 labels: readable, the limit is one of them, and no mathtext to lay out
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("task")
        ax.set_ylabel(CURVATURES[name])
        ax.set_title(f"{name.capitalize()} per task", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
    axes[-1].plot([], [], marker="X", color=BLACKOUT_COLOUR, linestyle="none", label="blackout task")
    _legend_all(axes)
    return fig


# -- across settings ------------------------------------------------------------------------


def _setting_lines(ax, curves: list[tuple[int, str, np.ndarray]], n_settings: int, prefix: str) -> None:
    colours = _colours(n_settings)  # by setting, so a setting has one colour in every panel
    for k, label, mean in curves:
        x = np.arange(1, len(mean) + 1)
        keep = ~np.isnan(mean)
        ax.plot(
            x[keep],
            mean[keep],
            color=colours[k],
            marker="o" if len(mean) <= 30 else None,
            markersize=3,
            linewidth=1.5,
            label=label,
            gid=f"{prefix}-{k}",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("tasks trained")
    ax.grid(True, alpha=0.3)


def _chance_line(ax, results: list[Result]) -> None:
    levels = [np.mean(c) for c in map(_chance, results) if c]
    if levels:
        ax.axhline(float(np.mean(levels)), color="grey", linestyle="--", linewidth=1, label="chance", gid="chance")


def _curves(results: list[Result], series: Callable[[Result], list[float | None]]) -> list[tuple[int, str, np.ndarray]]:
    """(setting index, setting label, mean over seeds per task) for each setting with some value."""
    out = [
        (k, label, mean_over_seeds([series(r) for r in runs])) for k, (label, runs) in enumerate(settings_of(results))
    ]
    return [(k, label, mean) for k, label, mean in out if mean.size and not np.isnan(mean).all()]


def figure_methods(results: list[Result]) -> Figure:
    """Average accuracy over the tasks seen so far, per setting, mean over the seeds that got that far."""
    curves = _curves(results, average_accuracy)
    if not curves:
        raise NothingToPlot("no run has evaluated accuracies")
    fig, (ax,) = _new_figure(height=max(4.5, 0.19 * len(curves) + 1.0))  # room for the legend
    _setting_lines(ax, curves, len(settings_of(results)), "method")
    _chance_line(ax, results)
    ax.set_ylim(0.0, 1.02)
    ax.set_ylabel("average accuracy on tasks so far")
    ax.set_title("Average accuracy by setting (mean over seeds)")
    _legend_outside(ax)
    return fig


def figure_plasticity(results: list[Result]) -> Figure:
    """Whether the network can still learn: accuracy on each new task just after learning it, and the
    fraction of dead hidden units, per setting (mean over seeds). A panel without data is left out."""
    panels = [
        (name, curves)
        for name in ("new_task_acc", "dead_units")
        if (curves := _curves(results, partial(Result.diagnostic, name=name)))
    ]
    if not panels:
        raise NothingToPlot("no run recorded new-task accuracy or dead units")
    n_settings = len(settings_of(results))
    fig, axes = _new_figure(7.0 if len(panels) == 1 else 12.0, max(4.5, 0.19 * n_settings + 1.0), len(panels))
    for (name, curves), ax in zip(panels, axes):
        if name == "new_task_acc":
            _setting_lines(ax, curves, n_settings, "new-task")
            _chance_line(ax, results)
            ax.set_ylim(0.0, 1.02)
            ax.set_ylabel("accuracy on the new task")
            ax.set_title("New-task accuracy", fontsize=10)
        else:
            _setting_lines(ax, curves, n_settings, "dead-units")
            ax.set_ylim(bottom=0.0)
            ax.set_ylabel("fraction of dead hidden units")
            ax.set_title("Dead units", fontsize=10)
    _legend_all(axes)
    return fig


def subspace_use(r: Result, layer: int) -> list[float | None]:
    """One layer's subspace use after each task (None where the run did not record it)."""
    return [
        u[layer] if isinstance(u := d.get("subspace_use"), list) and layer < len(u) else None for d in r.diagnostics
    ]


def figure_subspace(results: list[Result]) -> Figure:
    """How full each layer's protected subspace is after each task, per setting (mean over seeds): a
    projection method can learn a new task only in what is left, so a layer near 1 has no room."""
    projecting = [r for r in results if any(d.get("subspace_use") for d in r.diagnostics)]
    if not projecting:
        raise NothingToPlot("no run recorded subspace use (only projection methods such as gpm and owm do)")
    layers = max(len(d["subspace_use"]) for r in projecting for d in r.diagnostics if d.get("subspace_use"))
    n_settings = len(settings_of(projecting))
    fig, axes = _new_figure(4.0 * layers + 2.5, max(4.0, 0.19 * n_settings + 1.0), layers)
    for layer, ax in enumerate(axes):
        _setting_lines(ax, _curves(projecting, partial(subspace_use, layer=layer)), n_settings, f"subspace-{layer}")
        ax.set_ylim(0.0, 1.02)
        ax.set_title(f"layer {layer + 1}" + (" (output)" if layer == layers - 1 else ""), fontsize=10)
    axes[0].set_ylabel("fraction of the layer's input space protected")
    _legend_all(axes)
    return fig


# -- the forecast ------------------------------------------------------------------------------

FORECAST_AFTER = (2, 3, 5, 8)


def figure_forecast(check: ForecastCheck, after: tuple[int, ...] = FORECAST_AFTER) -> Figure:
    """The blackout task forecast after task k (y) against the one observed (x), one colour per k; a
    run without blackout and a forecast of none sit at the budget + 1. The band is max(2 tasks, 20%)."""
    pts = {
        k: [
            (f.blackout_task or f.budget + 1, f.task[i] or f.budget + 1)
            for f in check.runs
            if (i := f.made_after(k)) is not None and (f.blackout_task is None or f.blackout_task > k)
        ]
        for k in after
    }
    pts = {k: v for k, v in pts.items() if v}
    if not pts:
        raise NothingToPlot("no run made a forecast of its blackout task (EWC with plain SGD, two tasks or more)")
    fig, (ax,) = _new_figure(7.0, 5.0)
    top = max(max(max(p) for p in v) for v in pts.values()) + 1
    line = np.linspace(1, top, 100)
    ax.fill_between(
        line,
        line - np.maximum(2, 0.2 * line),
        line + np.maximum(2, 0.2 * line),
        color="grey",
        alpha=0.15,
        linewidth=0,
        gid="band",
        label="within max(2 tasks, 20%)",
    )
    ax.plot(line, line, color="black", linewidth=1, linestyle="--", gid="diagonal", label="forecast = observed")
    for (k, v), colour in zip(pts.items(), _colours(len(pts))):
        ax.scatter(
            *zip(*v),
            s=18,
            color=colour,
            alpha=0.6,
            linewidths=0,
            gid=f"after-{k}",
            label=f"forecast after task {k} ({len(v)} runs)",
            zorder=3,
        )
    _legend_outside(ax)
    ax.set_xlabel("observed blackout task (budget + 1: none)")
    ax.set_ylabel("forecast blackout task (budget + 1: none)")
    ax.set_title("Forecast against the blackout task, by the task it was made after")
    ax.grid(True, alpha=0.3)
    return fig


accuracy_matrix = _saver(figure_accuracy_matrix, "accuracy-matrix heatmap of one run")
task_curves = _saver(figure_task_curves, "per-task accuracy curves of one run")
capacity = _saver(figure_capacity, "capacity figure of an analysis")
forecast = _saver(figure_forecast, "forecast against the blackout task, by the task it was made after")
stability = _saver(figure_stability, "stability (and sharpness) figure of a set of runs")
methods = _saver(figure_methods, "method comparison figure")
plasticity = _saver(figure_plasticity, "plasticity figure (new-task accuracy, dead units)")
subspace = _saver(figure_subspace, "subspace-use figure of the projection methods (per layer)")
