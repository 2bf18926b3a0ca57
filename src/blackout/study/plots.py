"""Figures of runs and studies, written as PNG (for reading) and SVG (for papers) side by side.

Every figure has two entry points: ``figure_<name>(...) -> Figure`` builds it (tests and the
HTML report use this), and ``<name>(..., stem) -> [stem.png, stem.svg]`` builds and saves it.
Figures are plain ``matplotlib.figure.Figure`` objects on an Agg canvas, never registered with
pyplot, so nothing global changes, nothing needs a display and nothing is left open.

Plotted artists carry a ``gid`` (``task-3``, ``censored-0``, ``blackout`` ...), which becomes the
``id`` of their group in the SVG, so both the Figure and the SVG can be checked for content.
A figure that has nothing to show raises ``NothingToPlot`` with a sentence saying why.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator, NullFormatter

__all__ = [
    "NothingToPlot",
    "accuracy_matrix",
    "task_curves",
    "capacity",
    "stability",
    "methods",
    "figure_accuracy_matrix",
    "figure_task_curves",
    "figure_capacity",
    "figure_stability",
    "figure_methods",
    "save_figure",
    "png_bytes",
    "acc_matrix",
    "average_accuracy",
    "run_info",
    "run_label",
    "method_label",
]

DPI = 120
BLACKOUT_COLOUR = "crimson"
ANNOTATE_MAX_CELLS = 150


class NothingToPlot(ValueError):
    """The data cannot make this figure; the message says why, in one sentence."""


# -- reading results ------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    """A finite float, or None for missing, null, NaN or non-numeric values."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def acc_matrix(result: dict) -> np.ndarray:
    """R as a float array (rows: after task i, cols: task j), NaN where not evaluated."""
    rows = result.get("acc") or []
    if not rows:
        tasks = (result.get("config") or {}).get("data", {}).get("tasks") or 0
        return np.zeros((0, int(tasks)))
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            f = _num(v)
            if f is not None:
                out[i, j] = f
    return out


def average_accuracy(result: dict) -> np.ndarray:
    """Mean accuracy over the tasks seen so far after each task: mean of R[i][:i+1]."""
    r = acc_matrix(result)
    out = np.full(r.shape[0], np.nan)
    for i in range(r.shape[0]):
        seen = r[i, : i + 1]
        seen = seen[~np.isnan(seen)]
        if seen.size:
            out[i] = seen.mean()
    return out


def _blackout_task(result: dict) -> int | None:
    b = (result.get("blackout") or {}).get("task")
    return int(b) if _num(b) is not None else None


def run_info(result: dict) -> dict[str, Any]:
    """The settings a reader tells runs apart by, with None where the result lacks them."""
    cfg = result.get("config") or {}
    data, model, method = cfg.get("data") or {}, cfg.get("model") or {}, cfg.get("method") or {}
    train = cfg.get("train") or {}
    hidden = model.get("hidden")
    if isinstance(hidden, (list, tuple)) and hidden:
        width = "×".join(str(h) for h in hidden)
    elif hidden is not None:
        width = str(hidden)
    else:
        width = None
    seed = result.get("seed", train.get("seed"))
    return {
        "run_id": result.get("run_id"),
        "method": method.get("method"),
        "lam": _num(method.get("lam")),
        "width": width,
        "arch": model.get("arch"),
        "seed": seed,
        "dataset": data.get("dataset"),
        "stream": data.get("stream"),
    }


def method_label(result: dict) -> str:
    """'ewc λ=15', 'replay memory=200': the method and the settings it uses (``compare.setting_label``)."""
    from .compare import setting_label

    if not ((result.get("config") or {}).get("method") or {}).get("method"):
        return "?"
    return setting_label(result)


def run_label(result: dict) -> str:
    """One short line naming a run: method, λ, width, seed."""
    info = run_info(result)
    parts = [method_label(result)]
    if info["width"] is not None:
        parts.append(f"width {info['width']}")
    if info["seed"] is not None:
        parts.append(f"seed {info['seed']}")
    return ", ".join(parts)


def _colours(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"]
    if n <= 20:
        return [cmap(i) for i in range(n)]
    return [cmap(v) for v in np.linspace(0.05, 0.95, n)]


def _new_figure(width: float = 7.0, height: float = 4.5) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


# -- saving ---------------------------------------------------------------------------------


def save_figure(fig: Figure, stem: Path | str, formats: Iterable[str] = ("png", "svg")) -> list[Path]:
    """Write ``stem.<fmt>`` for each format; SVG keeps its text as text so it stays searchable."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        with rc_context({"svg.fonttype": "none", "svg.hashsalt": "blackout"}):
            meta = {"Date": None} if fmt == "svg" else {}
            fig.savefig(path, format=fmt, dpi=DPI, bbox_inches="tight", metadata=meta)
        paths.append(path)
    fig.clear()
    return paths


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, for embedding in a report."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    fig.clear()
    return buf.getvalue()


# -- accuracy matrix ------------------------------------------------------------------------


def figure_accuracy_matrix(result: dict) -> Figure:
    """Heatmap of R: forgetting shows as fading columns, blackout as a row at chance everywhere."""
    r = acc_matrix(result)
    rows, cols = r.shape
    if rows == 0 or cols == 0 or np.isnan(r).all():
        raise NothingToPlot("the run has no evaluated accuracies")
    cell = 0.45 if rows * cols <= ANNOTATE_MAX_CELLS else 0.22
    fig, ax = _new_figure(min(12.0, max(4.5, 1.8 + cell * cols)), min(12.0, max(3.5, 1.4 + cell * rows)))
    cmap = colormaps["viridis"].with_extremes(bad=(1, 1, 1, 0))
    image = ax.imshow(np.ma.masked_invalid(r), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    image.set_gid("matrix")
    fig.colorbar(image, ax=ax, label="accuracy", shrink=0.9)
    if rows * cols <= ANNOTATE_MAX_CELLS:
        for i in range(rows):
            for j in range(cols):
                if not np.isnan(r[i, j]):
                    ax.text(j, i, f"{r[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if r[i, j] < 0.6 else "black", gid=f"cell-{i + 1}-{j + 1}")
    step = max(1, math.ceil(max(rows, cols) / 25))
    ax.set_xticks(range(0, cols, step), [str(j + 1) for j in range(0, cols, step)])
    ylabels = [str(i + 1) for i in range(rows)]
    b = _blackout_task(result)
    if b is not None and 1 <= b <= rows:
        ylabels[b - 1] = f"{b} blackout"
        ax.add_patch(Rectangle((-0.5, b - 1.5), cols, 1, fill=False, edgecolor=BLACKOUT_COLOUR,
                               linewidth=2, gid="blackout-row"))
    yticks = sorted(set(range(0, rows, step)) | ({b - 1} if b is not None and 1 <= b <= rows else set()))
    ax.set_yticks(yticks, [ylabels[i] for i in yticks])
    ax.set_xlabel("task evaluated")
    ax.set_ylabel("after training task")
    ax.set_title(f"Accuracy matrix: {run_label(result)}", fontsize=10)
    return fig


def accuracy_matrix(result: dict, stem: Path | str) -> list[Path]:
    """Save the accuracy-matrix heatmap of one run as ``stem.png`` and ``stem.svg``."""
    return save_figure(figure_accuracy_matrix(result), stem)


# -- task curves ----------------------------------------------------------------------------


def _chance_levels(result: dict) -> list[float]:
    values = [_num(c) for c in ((result.get("data") or {}).get("chance") or [])]
    return sorted({round(v, 6) for v in values if v is not None})


def figure_task_curves(result: dict) -> Figure:
    """Each task's accuracy from when it was trained on, as in the EWC paper's permuted-MNIST figure."""
    r = acc_matrix(result)
    rows = r.shape[0]
    if rows == 0 or np.isnan(r).all():
        raise NothingToPlot("the run has no evaluated accuracies")
    fig, ax = _new_figure()
    trained = min(rows, r.shape[1])
    colours = _colours(trained) if trained <= 10 else [colormaps["viridis"](v) for v in np.linspace(0, 1, trained)]
    marker = "o" if rows <= 30 else None
    for j in range(trained):
        x = np.arange(j + 1, rows + 1)
        y = r[j:, j]
        keep = ~np.isnan(y)
        ax.plot(x[keep], y[keep], color=colours[j], marker=marker, markersize=3, linewidth=1.4,
                label=f"task {j + 1}", gid=f"task-{j + 1}")
    for k, c in enumerate(_chance_levels(result)):
        ax.axhline(c, color="grey", linestyle="--", linewidth=1, label="chance" if k == 0 else None,
                   gid="chance" if k == 0 else f"chance-{k}")
    b = _blackout_task(result)
    if b is not None:
        cause = (result.get("blackout") or {}).get("cause")
        ax.axvline(b, color=BLACKOUT_COLOUR, linestyle=":", linewidth=1.6, gid="blackout",
                   label=f"blackout (task {b}{', ' + str(cause) if cause else ''})")
    ax.set_xlim(0.5, rows + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("tasks trained")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy of each task through the sequence: {run_label(result)}", fontsize=10)
    if trained <= 10:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        handles = [h for h in ax.get_lines() if h.get_gid() in ("chance", "blackout")]
        if handles:
            ax.legend(handles=handles, fontsize=7, loc="lower left")
        scale = ScalarMappable(norm=Normalize(0.5, trained + 0.5), cmap=colormaps["viridis"].resampled(trained))
        fig.colorbar(scale, ax=ax, label="task")
    return fig


def task_curves(result: dict, stem: Path | str) -> list[Path]:
    """Save the per-task accuracy curves of one run as ``stem.png`` and ``stem.svg``."""
    return save_figure(figure_task_curves(result), stem)


# -- capacity -------------------------------------------------------------------------------


def _fit_line_x(xs: list[float], log_x: bool) -> np.ndarray:
    lo, hi = min(xs), max(xs)
    if log_x:
        return np.geomspace(lo, hi, 200)
    return np.linspace(lo, hi, 200)


def _linear_label(fit: dict, axis: str) -> str | None:
    slope, icpt, r2 = _num(fit.get("slope")), _num(fit.get("intercept")), _num(fit.get("r2"))
    if slope is None or icpt is None:
        return None
    sign = "+" if icpt >= 0 else "−"
    text = f"linear: y = {slope:.3g}·{axis} {sign} {abs(icpt):.3g}"
    return text + (f" (R² = {r2:.3f})" if r2 is not None else "")


def _power_label(fit: dict, axis: str) -> str | None:
    expo, coef, r2 = _num(fit.get("exponent")), _num(fit.get("coef")), _num(fit.get("r2"))
    if expo is None or coef is None:
        return None
    text = f"power: y = {coef:.3g}·{axis}^{expo:.3g}"
    return text + (f" (R² = {r2:.3f})" if r2 is not None else "")


def figure_capacity(analysis: dict) -> Figure:
    """Blackout task against the capacity axis: the data, the group means and both fitted laws."""
    groups = (analysis or {}).get("groups") or []
    axis = str((analysis or {}).get("axis") or "capacity")
    xs_all = [_num(p.get("x")) for g in groups for p in (g.get("points") or [])]
    xs_all = [x for x in xs_all if x is not None]
    if not xs_all:
        raise NothingToPlot("the analysis has no data points")
    log_x = min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 10
    fig, ax = _new_figure(8.0, 5.0)
    colours = _colours(len(groups))
    any_censored = any_mean = False
    for gi, (g, colour) in enumerate(zip(groups, colours)):
        label = str(g.get("label") or f"group {gi + 1}")
        pts = [(_num(p.get("x")), _num(p.get("y")), bool(p.get("censored"))) for p in (g.get("points") or [])]
        pts = [(x, y, c) for x, y, c in pts if x is not None and y is not None]
        done = [(x, y) for x, y, c in pts if not c]
        cens = [(x, y) for x, y, c in pts if c]
        if done:
            ax.scatter(*zip(*done), s=22, color=colour, alpha=0.55, linewidths=0, gid=f"points-{gi}",
                       label=label, zorder=3)
        if cens:
            any_censored = True
            ax.scatter(*zip(*cens), s=40, marker="^", facecolors="none", edgecolors=colour, linewidths=1.2,
                       gid=f"censored-{gi}", label=None if done else label, zorder=3)
        summ = [(_num(s.get("x")), _num(s.get("mean")), _num(s.get("ci_lo")), _num(s.get("ci_hi")))
                for s in (g.get("summary") or [])]
        summ = [s for s in summ if s[0] is not None and s[1] is not None]
        if summ:
            any_mean = True
            sx = np.array([s[0] for s in summ])
            sm = np.array([s[1] for s in summ])
            lo = np.array([sm[k] - s[2] if s[2] is not None else 0.0 for k, s in enumerate(summ)])
            hi = np.array([s[3] - sm[k] if s[3] is not None else 0.0 for k, s in enumerate(summ)])
            bars = ax.errorbar(sx, sm, yerr=np.clip(np.vstack([lo, hi]), 0, None), fmt="s", color=colour,
                               markersize=6, capsize=3, linewidth=1.2, zorder=4)
            bars.lines[0].set_gid(f"means-{gi}")
            for k, coll in enumerate(bars.lines[2]):
                coll.set_gid(f"ci-{gi}-{k}")
        gx = [x for x, _, _ in pts] or [s[0] for s in summ]
        if not gx or min(gx) == max(gx):
            continue
        line_x = _fit_line_x(gx, log_x)
        better = g.get("better")
        lin = g.get("linear") or {}
        text = _linear_label(lin, axis)
        if lin.get("ok", True) and text:
            ax.plot(line_x, _num(lin["slope"]) * line_x + _num(lin["intercept"]), color=colour, linewidth=1.5,
                    label=text + (" [better]" if better == "linear" else ""), gid=f"linear-{gi}")
        powf = g.get("power") or {}
        text = _power_label(powf, axis)
        if powf.get("ok", True) and text and min(gx) > 0:
            ax.plot(line_x, _num(powf["coef"]) * line_x ** _num(powf["exponent"]), color=colour, linewidth=1.5,
                    linestyle="--", label=text + (" [better]" if better == "power" else ""), gid=f"power-{gi}")
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    distinct = sorted(set(xs_all))
    if len(distinct) <= 12:
        ax.set_xticks(distinct, [f"{x:g}" for x in distinct])
    handles, labels = ax.get_legend_handles_labels()
    proxies = [Line2D([], [], marker="o", color="grey", alpha=0.55, linestyle="none", label="one seed")]
    if any_censored:
        proxies.append(Line2D([], [], marker="^", markerfacecolor="none", markeredgecolor="grey", linestyle="none",
                              label="no blackout by the last task (lower bound)"))
    if any_mean:
        proxies.append(Line2D([], [], marker="s", color="grey", label="mean with interval"))
    ax.legend(handles=handles + proxies, labels=labels + [p.get_label() for p in proxies], fontsize=7,
              loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel(axis)
    ax.set_ylabel("blackout task")
    ax.set_title(f"Blackout task vs {axis}")
    ax.grid(True, alpha=0.3)
    return fig


def capacity(analysis: dict, stem: Path | str) -> list[Path]:
    """Save the capacity figure of an analysis as ``stem.png`` and ``stem.svg``."""
    return save_figure(figure_capacity(analysis), stem)


# -- stability ------------------------------------------------------------------------------


def figure_stability(results: list[dict]) -> Figure:
    """Stability number per task on a log scale against s = 2, where gradient descent stops being stable."""
    series = []
    for res in results:
        pts = [(_num(d.get("task")), _num(d.get("stability"))) for d in (res.get("diagnostics") or [])]
        pts = [(t, s) for t, s in pts if t is not None and s is not None and s > 0]
        if pts:
            series.append((res, sorted(pts)))
    if not series:
        raise NothingToPlot("no run recorded a positive stability number")
    fig, ax = _new_figure(8.0, 4.8)
    colours = _colours(len(series))
    for k, ((res, pts), colour) in enumerate(zip(series, colours)):
        t, s = zip(*pts)
        ax.plot(t, s, color=colour, linewidth=1.3, marker="o" if len(t) <= 30 else None, markersize=3,
                label=run_label(res) if len(series) <= 12 else None, gid=f"run-{k}")
        b = _blackout_task(res)
        if b is not None:
            at = dict(pts).get(float(b))
            if at is not None:
                ax.plot([b], [at], marker="X", markersize=10, color=BLACKOUT_COLOUR, markeredgecolor=colour,
                        linestyle="none", gid=f"blackout-{k}")
            else:
                ax.axvline(b, color=colour, linestyle=":", linewidth=1.2, gid=f"blackout-{k}")
    ax.axhline(2.0, color="black", linestyle="--", linewidth=1, label="s = 2", gid="s2")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="X", color=BLACKOUT_COLOUR, linestyle="none"))
    labels.append("blackout task")
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel("task")
    ax.set_ylabel("stability number")
    ax.set_title("Stability number per task")
    ax.grid(True, which="both", alpha=0.25)
    return fig


def stability(results: list[dict], stem: Path | str) -> list[Path]:
    """Save the stability figure of a set of runs as ``stem.png`` and ``stem.svg``."""
    return save_figure(figure_stability(results), stem)


# -- methods --------------------------------------------------------------------------------


def _method_groups(results: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by method and λ, so that a line is a mean over seeds only.

    Width, dataset and stream join the label when they vary among the runs: averaging a narrow
    net that blacked out with a wide one that did not would describe neither.
    """
    infos = [run_info(r) for r in results]
    extra = [k for k in ("width", "dataset", "stream") if len({i[k] for i in infos}) > 1]
    groups: dict[str, list[dict]] = defaultdict(list)
    for res, info in zip(results, infos):
        label = method_label(res)
        if extra:
            label += " (" + ", ".join(f"width {info[k]}" if k == "width" else str(info[k]) for k in extra) + ")"
        groups[label].append(res)
    return dict(sorted(groups.items(), key=lambda kv: _label_order(kv[1][0], kv[0])))


def _label_order(result: dict, label: str) -> tuple:
    hidden = ((result.get("config") or {}).get("model") or {}).get("hidden")
    widths = [w for w in (_num(h) for h in (hidden if isinstance(hidden, (list, tuple)) else [hidden])) if w is not None]
    return (method_label(result), sum(widths), label)


def figure_methods(results: list[dict]) -> Figure:
    """Average accuracy over the tasks seen so far, per method, averaged over the runs that got that far."""
    groups = _method_groups(results)
    curves = {}
    for label, runs in groups.items():
        avgs = [average_accuracy(r) for r in runs]
        n = max((len(a) for a in avgs), default=0)
        if n == 0:
            continue
        mean = np.full(n, np.nan)
        for i in range(n):
            vals = [a[i] for a in avgs if len(a) > i and not np.isnan(a[i])]
            if vals:
                mean[i] = float(np.mean(vals))
        if not np.isnan(mean).all():
            curves[label] = mean
    if not curves:
        raise NothingToPlot("no run has evaluated accuracies")
    fig, ax = _new_figure(height=max(4.5, 0.19 * len(curves) + 1.0))  # room for the legend
    for k, ((label, mean), colour) in enumerate(zip(curves.items(), _colours(len(curves)))):
        x = np.arange(1, len(mean) + 1)
        keep = ~np.isnan(mean)
        ax.plot(x[keep], mean[keep], color=colour, marker="o" if len(mean) <= 30 else None, markersize=3,
                linewidth=1.5, label=label, gid=f"method-{k}")
    chances = [np.mean(c) for c in (_chance_levels(r) for r in results) if c]
    if chances:
        ax.axhline(float(np.mean(chances)), color="grey", linestyle="--", linewidth=1, label="chance", gid="chance")
    ax.set_ylim(0.0, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("tasks trained")
    ax.set_ylabel("average accuracy on tasks so far")
    ax.set_title("Average accuracy by method (mean over seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(True, alpha=0.3)
    return fig


def methods(results: list[dict], stem: Path | str) -> list[Path]:
    """Save the method comparison figure as ``stem.png`` and ``stem.svg``."""
    return save_figure(figure_methods(results), stem)
