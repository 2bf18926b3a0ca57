"""One self-contained HTML report of a study: what was run, what law the blackout task follows,
which runs failed, the figures, and everything needed to reproduce it (configs, spec, versions).

The page embeds its figures as base64 PNG and its style inline, and has no scripts and no
external references, so it can be mailed, archived or opened offline and looks the same
everywhere. It is rendered from ``templates/report.html.j2`` with autoescaping on, so text from
results, errors or the study spec can never become markup; this module only gathers values.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import pickle
import re
import statistics
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from .. import __version__
from ..experiment.forecast import FORECAST_LAG, FORECAST_S
from ..experiment.result import Result, environment, finite_or_none
from ..files import atomic_write, head, need_folder, replaceable
from . import capacity
from .analysis import Analysis
from .compare import checkpoints_for, method_table, network_label, run_label, setting_labels, settings_of
from .figfile import figure_key, is_figure
from .results import ResultSet

__all__ = ["write_report", "render_report", "representative_runs", "is_report"]

MAX_REPRESENTATIVES = 8

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("blackout.study", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def is_report(path: Path) -> bool:
    """A page this module wrote: its head carries the generator tag the template writes."""
    return b'<meta name="generator" content="blackout' in head(path, 4096)


def _num(v: Any, spec: str = ".3g") -> str:
    f = finite_or_none(v)
    return "—" if f is None else format(f, spec)


_ENV.filters["num"] = _num


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _order(r: Result) -> tuple:
    return (r.method, finite_or_none(r.method_settings.get("lam")) or 0.0, sum(r.hidden), r.seed, r.run_id)


# -- what to show ---------------------------------------------------------------------------


def representative_runs(results: list[Result], analysis: Analysis | None) -> list[tuple[str, Result]]:
    """Runs whose own figures are shown: per capacity group, the lowest seed at the smallest and
    largest capacity; without groups (no run learned), per setting at the narrowest and widest net."""
    by_id = {r.run_id: r for r in results}
    chosen: dict[str, tuple[str, Result]] = {}
    axis = analysis.axis if analysis else "width"
    for g in analysis.groups if analysis else []:
        pts = [p for p in g.points if p.run_id in by_id]
        if not pts:
            continue
        for end, pick in (("narrowest", min), ("widest", max)):
            x = pick(p.x for p in pts)
            at = min((p for p in pts if p.x == x), key=lambda p: p.seed)
            chosen.setdefault(at.run_id, (f"{g.label}: {end} {axis} ({x:g}), seed {at.seed}", by_id[at.run_id]))
    if not chosen:
        for label, runs in settings_of(results):
            for end, pick in (("narrowest", min), ("widest", max)):
                w = pick(sum(r.hidden) for r in runs)
                run = min((r for r in runs if sum(r.hidden) == w), key=lambda r: r.seed)
                chosen.setdefault(run.run_id, (f"{label}: {end} network, seed {run.seed}", run))
    return list(chosen.values())


class _Figures:
    """Renders figures for the page (base64 PNG) and, given a folder, saves them there as PNG (and SVG
    when asked), each file carrying a digest of what drew it: a figure whose digest the file in the
    folder already carries is read back instead of drawn again."""

    def __init__(self, folder: Path | None, svg: bool = False):
        self.folder = folder
        self.formats = ("png", "svg") if svg else ("png",)
        self._digests: dict[int, tuple[Any, str]] = {}  # by id, holding the object so the id stays its own

    def __call__(self, name: str, build: Callable[[Any], Any], inputs: Any, alt: str, caption: str) -> dict:
        """The page's entry for one figure; ``build(plots)`` makes it from ``inputs``, the values it
        is drawn from (their digest decides whether a saved figure is current)."""
        stem = self.folder / re.sub(r"[^A-Za-z0-9_.-]", "_", name) if self.folder else None
        files = [stem.with_name(f"{stem.name}.{fmt}") for fmt in ("png", "svg")] if stem else []
        for f in files:  # replaced or removed below: only figures an earlier report saved
            replaceable(f, is_figure)
        key = self._key(name, inputs) if stem else None
        wanted = files[: len(self.formats)]
        for f in files[len(self.formats) :]:  # an SVG this report does not draw would not match it
            f.unlink(missing_ok=True)
        if wanted and all(f.is_file() and figure_key(f) == key for f in wanted):
            return self._entry(alt, caption, wanted[0].read_bytes())
        from . import plots  # only to draw: with every figure current, matplotlib's figures stay unimported

        try:
            fig = build(plots)
        except plots.NothingToPlot as exc:
            for f in files:  # a figure from an earlier report would contradict this one
                f.unlink(missing_ok=True)
            return {"alt": alt, "caption": caption, "png": None, "skip": str(exc)}
        png = plots.save_figure(fig, stem, self.formats, key)[0].read_bytes() if stem else plots.png_bytes(fig)
        return self._entry(alt, caption, png)

    @staticmethod
    def _entry(alt: str, caption: str, png: bytes) -> dict:
        return {"alt": alt, "caption": caption, "png": base64.b64encode(png).decode("ascii"), "skip": None}

    def _key(self, name: str, inputs: Any) -> str:
        """Digest of everything a figure depends on: its name, its inputs, the package's code, this
        version, and matplotlib's version and settings.

        An input is digested as its pickle: a faithful copy of every field (NaN apart from a missing
        value, every array element), so two inputs with one digest hold the same data. Equal data
        pickled differently (another key order) only costs drawing the figure again.
        """
        parts = [name, __version__, _code_digest(), _rc_digest()]
        for obj in inputs if isinstance(inputs, list) else [inputs]:
            if id(obj) not in self._digests:
                self._digests[id(obj)] = (obj, hashlib.sha256(pickle.dumps(obj, protocol=5)).hexdigest())
            parts.append(self._digests[id(obj)][1])
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """The source of the whole package: a figure's look and labels come from several of its modules."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _rc_digest() -> str:
    """matplotlib's version and settings (a style or matplotlibrc changes every figure). The backend is
    left out: the figures are drawn on their own Agg canvas, and reading the setting would import pyplot."""
    import matplotlib

    settings = sorted((k, v) for k, v in dict.items(matplotlib.rcParams) if not k.startswith("backend"))
    return hashlib.sha256(repr((matplotlib.__version__, settings)).encode()).hexdigest()


# -- sections -------------------------------------------------------------------------------


def _summary(rs: ResultSet) -> dict:
    runs = rs.runs
    blackouts = [r.verdict.task for r in runs if r.verdict.task is not None]
    causes = Counter(r.verdict.cause or "unknown" for r in runs if r.verdict.task is not None)
    return {
        "n_runs": len(runs),
        "n_failed": len(rs.failed),
        "n_blackout": len(blackouts),
        "n_censored": sum(r.verdict.task is None and r.verdict.learned for r in runs),
        "n_never_learned": sum(not r.verdict.learned for r in runs),
        "settings": sorted(set(setting_labels(runs).values())),
        "data": sorted({r.data_label for r in runs}),
        "causes": ", ".join(f"{c} {k}" for c, k in sorted(causes.items())),
        "median": statistics.median(blackouts) if blackouts else None,
        "first": min(blackouts, default=None),
        "last": max(blackouts, default=None),
        "numerics": rs.notes(),
    }


def _methods(runs: list[Result]) -> dict:
    checkpoints = checkpoints_for(runs)
    rows = method_table(runs, checkpoints) if runs else []
    for row in rows:
        row["causes_text"] = ", ".join(f"{k} {v}" for k, v in sorted(row["causes"].items())) or "none"
        row["acc"] = [(row[f"acc@{k}"], row[f"acc@{k}_after_blackout"]) for k in checkpoints]
    return {"checkpoints": checkpoints, "rows": rows}


def _section(cfg: Any, name: str) -> dict:
    """A failed run's config section; empty when its stored config is missing or not a run config."""
    sec = cfg.get(name) if isinstance(cfg, dict) else None
    return sec if isinstance(sec, dict) else {}


def _failed(rs: ResultSet) -> list[dict]:
    out = []
    for f in rs.failed:
        cfg = f.get("config")
        hidden = _section(cfg, "model").get("hidden")
        out.append(
            {
                "run_id": f.get("run_id"),
                "attempts": f.get("attempts"),
                "error": f.get("error") or "",
                "method": _section(cfg, "method").get("method"),
                "seed": _section(cfg, "train").get("seed"),
                "hidden": ",".join(map(str, hidden)) if isinstance(hidden, (list, tuple)) else hidden,
            }
        )
    return out


def _runs(runs: list[Result]) -> list[dict]:
    labels = setting_labels(runs)
    return [
        {
            "run_id": r.run_id,
            "setting": labels[r.run_id],
            "network": network_label(r),
            "seed": r.seed,
            "blackout": r.verdict.task,
            "cause": r.verdict.cause,
            "learned": r.verdict.learned,
            "retained": r.verdict.retained,
            "tasks_run": r.tasks_run,
            "avg_acc": r.metrics.get("avg_acc"),
            "new_task_acc": r.acc[r.tasks_run - 1, r.tasks_run - 1] if r.tasks_run else None,
            "label": run_label(r),
            "config": _json(r.config),
        }
        for r in sorted(runs, key=_order)
    ]


def _versions(runs: list[Result]) -> list[tuple[str, str, str]]:
    """(name, this report's version, the versions the runs were made with and how many runs each)."""
    here = environment()

    def made(values: list[Any]) -> str:
        counts = Counter(str(v) for v in values if v is not None)
        return ", ".join(f"{v} ({n} run{'s' * (n != 1)})" for v, n in counts.most_common()) or "—"

    names = list(here) + sorted({k for r in runs for k in r.environment} - set(here))
    return [
        (
            k,
            str(here.get(k, "—")),
            made([r.version for r in runs] if k == "blackout" else [r.environment.get(k) for r in runs]),
        )
        for k in names
    ]


def _of_run(kind: str, r: Result) -> Callable[[Any], Any]:
    """The builder of one run's figure, ``plots.figure_<kind>(r)``."""
    return lambda plots: getattr(plots, f"figure_{kind}")(r)


def _figures(runs: list[Result], analysis: Analysis, draw: _Figures) -> dict:
    axis = analysis.axis

    def capacity_figure(plots):
        if len({p.x for g in analysis.groups for p in g.points}) < 2:
            raise plots.NothingToPlot(f"it needs runs at two or more values of {axis}")
        return plots.figure_capacity(analysis)

    reps = representative_runs(runs, analysis)
    return {
        "capacity": draw(
            "capacity",
            capacity_figure,
            analysis,
            "capacity",
            f"Blackout task against {axis}: dots are seeds, open triangles runs without blackout (drawn "
            "at their bound, a lower bound), squares group means with intervals, solid lines the linear "
            "law, dashed lines the power law.",
        ),
        "stability": draw(
            "stability",
            lambda plots: plots.figure_stability(runs),
            runs,
            "stability",
            "Stability number per task (log scale), and the sharpness of the penalised loss where it was "
            "measured; above the dashed line at 2 gradient descent is no longer stable. Crosses mark "
            "each run's blackout task.",
        ),
        "forecast": draw(
            "forecast",
            lambda plots: plots.figure_forecast(analysis.forecast),
            analysis.forecast,
            "forecast",
            "The blackout task each run forecast after task k (one colour per k) against the one observed; "
            "the shaded band is within max(2 tasks, 20%). Runs without blackout, and forecasts of none "
            "within the budget, sit at the budget + 1.",
        ),
        "methods": draw(
            "methods",
            lambda plots: plots.figure_methods(runs),
            runs,
            "methods",
            "Average accuracy over the tasks seen so far, mean over the seeds that reached that task.",
        ),
        "plasticity": draw(
            "plasticity",
            lambda plots: plots.figure_plasticity(runs),
            runs,
            "plasticity",
            "Accuracy on each task just after learning it, and the fraction of dead hidden units, mean "
            "over seeds: a network that cannot learn the new task has lost plasticity.",
        ),
        "subspace": draw(
            "subspace",
            lambda plots: plots.figure_subspace(runs),
            runs,
            "subspace use",
            "For the projection methods (gpm, owm): the fraction of each layer's input space their kept basis "
            "protects after each task, mean over seeds; a new task can only use what is left.",
        )
        if any(d.get("subspace_use") for r in runs for d in r.diagnostics)
        else None,
        "reps": [
            {
                "why": why,
                "run_id": r.run_id,
                "label": run_label(r),
                "matrix": draw(
                    f"run-{r.run_id}-matrix",
                    _of_run("accuracy_matrix", r),
                    r,
                    "accuracy matrix",
                    "Accuracy on each task (columns) after training each task (rows).",
                ),
                "curves": draw(
                    f"run-{r.run_id}-curves",
                    _of_run("task_curves", r),
                    r,
                    "task curves",
                    "Each task's accuracy from when it was trained; dashed: chance.",
                ),
            }
            for why, r in reps[:MAX_REPRESENTATIVES]
        ],
        "n_reps_hidden": max(0, len(reps) - MAX_REPRESENTATIVES),
    }


# -- the page -------------------------------------------------------------------------------


def render_report(
    rs: ResultSet,
    analysis: Analysis,
    *,
    title: str,
    study: dict | None = None,
    figures: Path | None = None,
    svg: bool = False,
) -> str:
    """The page as a string, from a ``capacity.analyze`` output of ``rs.runs``; figures saved into
    ``figures`` as PNG, and as SVG too with ``svg``."""
    runs = rs.runs
    return _ENV.get_template("report.html.j2").render(
        title=title,
        version=__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        summary=_summary(rs),
        axis=analysis.axis,
        n_never_learned=analysis.n_never_learned,
        laws=analysis.groups,
        methods=_methods(runs),
        stability=analysis.stability,
        predictor=analysis.predictor,
        forecast=analysis.forecast,
        forecast_s=FORECAST_S,
        forecast_lag=FORECAST_LAG,
        figures=_figures(runs, analysis, _Figures(figures, svg)),
        failed=_failed(rs),
        runs=_runs(runs),
        study=None if study is None else _json(study),
        versions=_versions(runs),
    )


def write_report(
    out: Path,
    rs: ResultSet,
    *,
    axis: str = "width",
    title: str,
    study: dict | None = None,
    figures: Path | None = None,
    n_boot: int = 1000,
    svg: bool = False,
) -> Path:
    """Analyse ``rs`` along ``axis`` (``n_boot`` bootstrap resamples for the laws' intervals) and write
    the HTML report to ``out``, aside and then renamed, so a reader never sees half a page and a
    failure leaves the previous report; figures also go to ``figures`` when given, as the PNG the
    page shows and, with ``svg``, as SVG for print (a figure whose inputs and code are unchanged since
    the files there were written is read back, not drawn again)."""
    out = Path(out)
    if figures is not None:
        need_folder(Path(figures), "a folder for the report's figures")
    page = render_report(
        rs, capacity.analyze(rs.runs, axis, n_boot=n_boot), title=title, study=study, figures=figures, svg=svg
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, page)
    return out
