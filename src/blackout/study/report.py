"""One self-contained HTML report of a study: what was run, what law the blackout task follows,
the figures, and everything needed to reproduce it (configs, study spec, versions).

The file embeds its figures as base64 PNG and its style inline, and has no scripts and no
external references, so it can be mailed, archived or opened offline and looks the same
everywhere. Every piece of text from results or the analysis goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import platform
import statistics
import sys
from collections import Counter, defaultdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from . import plots
from .plots import NothingToPlot, _num, method_label, run_info, run_label

__all__ = ["write_report", "representative_runs", "package_versions"]

MAX_REPRESENTATIVES = 8
VERSIONED_PACKAGES = ("blackout", "numpy", "scipy", "torch", "matplotlib", "scikit-learn")

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1150px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { border-bottom: 1px solid #ccc; margin-top: 2.2rem; }
.meta, .skip, figcaption { color: #666; font-size: .9rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .88rem; }
th, td { border: 1px solid #d5d5d5; padding: .25rem .55rem; text-align: left; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.pair { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.pair figure { flex: 1 1 480px; margin: 0; }
pre { background: #f7f7f7; padding: .6rem; overflow-x: auto; font-size: .8rem; }
details { margin: .3rem 0; } summary { cursor: pointer; }
.law { margin: .6rem 0 1rem; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: Any, spec: str = ".3g") -> str:
    v = _num(x)
    return "—" if v is None else format(v, spec)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _interval(ci: Any, spec: str = ".3g") -> str | None:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and _num(ci[0]) is not None and _num(ci[1]) is not None:
        return f"{format(_num(ci[0]), spec)} to {format(_num(ci[1]), spec)}"
    return None


def _width_number(result: dict) -> float:
    hidden = ((result.get("config") or {}).get("model") or {}).get("hidden")
    values = hidden if isinstance(hidden, (list, tuple)) else [hidden]
    nums = [_num(h) for h in values]
    return sum(n for n in nums if n is not None)


def _seed_key(seed: Any) -> float:
    v = _num(seed)
    return v if v is not None else math.inf


def _sort_key(result: dict) -> tuple:
    info = run_info(result)
    return (str(info["method"]), _num(info["lam"]) or 0.0, _width_number(result), _seed_key(info["seed"]),
            str(info["run_id"]))


# -- what to show --------------------------------------------------------------------------


def representative_runs(results: list[dict], analysis: dict | None) -> list[tuple[str, dict]]:
    """Runs whose own figures are shown: per group, the lowest seed at the narrowest and widest setting.

    Groups and the setting come from the analysis when its points name known runs; otherwise
    runs are grouped by method and λ and ordered by total hidden width.
    """
    by_id = {r.get("run_id"): r for r in results}
    chosen: list[tuple[str, dict]] = []
    seen: set = set()

    def take(why: str, res: dict) -> None:
        if res.get("run_id") not in seen:
            seen.add(res.get("run_id"))
            chosen.append((why, res))

    groups = (analysis or {}).get("groups") or []
    axis = str((analysis or {}).get("axis") or "setting")
    for g in groups:
        pts = [p for p in (g.get("points") or []) if p.get("run_id") in by_id and _num(p.get("x")) is not None]
        if not pts:
            continue
        for end, pick in (("narrowest", min), ("widest", max)):
            x = pick(_num(p["x"]) for p in pts)
            at = min((p for p in pts if _num(p["x"]) == x), key=lambda p: _seed_key(p.get("seed")))
            take(f"{g.get('label', '')}: {end} {axis} ({x:g}), seed {at.get('seed')}", by_id[at["run_id"]])
    if not chosen:
        by_method: dict[str, list[dict]] = defaultdict(list)
        for r in results:
            by_method[method_label(r)].append(r)
        for label, runs in sorted(by_method.items()):
            for end, pick in (("narrowest", min), ("widest", max)):
                w = pick(_width_number(r) for r in runs)
                at = min((r for r in runs if _width_number(r) == w), key=lambda r: _seed_key(run_info(r)["seed"]))
                take(f"{label}: {end} width, seed {run_info(at)['seed']}", at)
    return chosen


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages results depend on; absent ones are marked so."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _stability_from_results(results: list[dict]) -> dict:
    """The stability check when no analysis gives one: first task with stability number > 2 vs blackout."""
    runs = []
    for r in results:
        b = (r.get("blackout") or {}).get("task")
        first = next((d.get("task") for d in sorted(r.get("diagnostics") or [], key=lambda d: _num(d.get("task")) or 0)
                      if (_num(d.get("stability")) or 0) > 2), None)
        if _num(b) is not None and _num(first) is not None:
            runs.append({"run_id": r.get("run_id"), "first_unstable": first, "blackout_task": b,
                         "agree": abs(_num(first) - _num(b)) <= 1})
    share = sum(x["agree"] for x in runs) / len(runs) if runs else None
    return {"runs": runs, "share_within_one": share, "n_compared": len(runs)}


# -- sections -------------------------------------------------------------------------------


def _figure(build: Callable[[], Any], alt: str, caption: str) -> str:
    try:
        fig = build()
    except NothingToPlot as exc:
        return f'<p class="skip">{_e(alt.capitalize())} figure skipped: {_e(exc)}.</p>'
    data = base64.b64encode(plots.png_bytes(fig)).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _summary(results: list[dict]) -> str:
    if not results:
        return "<p>No runs were given, so there is nothing to summarise.</p>"
    n = len(results)
    labels = sorted({method_label(r) for r in results})
    infos = [run_info(r) for r in results]
    datasets = sorted({f"{i['dataset']} ({i['stream']})" for i in infos})
    blackouts = [r for r in results if _num((r.get("blackout") or {}).get("task")) is not None]
    causes = Counter(str((r.get("blackout") or {}).get("cause") or "unknown") for r in blackouts)
    items = [
        f"<li>{n} run{'s' if n != 1 else ''}.</li>",
        f"<li>Methods: {_e(', '.join(labels))}.</li>",
        f"<li>Data: {_e(', '.join(datasets))}.</li>",
    ]
    if blackouts:
        tasks = [_num(r["blackout"]["task"]) for r in blackouts]
        cause_text = ", ".join(f"{c} {k}" for c, k in sorted(causes.items()))
        items.append(f"<li>{len(blackouts)} of {n} runs blacked out (cause: {_e(cause_text)}); blackout task "
                     f"median {statistics.median(tasks):g}, range {min(tasks):g} to {max(tasks):g}.</li>")
    else:
        items.append(f"<li>No run blacked out: all {n} ran to their last task with some task above chance.</li>")
    censored = n - len(blackouts)
    if blackouts and censored:
        items.append(f"<li>{censored} run{'s' if censored != 1 else ''} ended without blackout (censored: the "
                     "blackout task is only known to be later than the last task run).</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _counts(g: dict) -> tuple[int, int]:
    """Runs and censored runs of a group: the fit's own counts, else counted from its points."""
    lin, pts = g.get("linear") or {}, g.get("points") or []
    n, n_cens = _num(lin.get("n")), _num(lin.get("n_censored"))
    return (int(n) if n is not None else len(pts),
            int(n_cens) if n_cens is not None else sum(bool(p.get("censored")) for p in pts))


def _law_text(g: dict, axis: str) -> str:
    label = str(g.get("label") or "all runs")
    lin, powf = g.get("linear") or {}, g.get("power") or {}
    n, n_cens = _counts(g)
    parts = [f"<strong>{_e(label)}</strong>: {n} run{'s' if n != 1 else ''}, {n_cens} censored "
             "(no blackout by the last task)."]
    if n and n_cens == n:
        parts.append("Every run was censored, so the blackout task is only bounded below.")
    slope, icpt = _num(lin.get("slope")), _num(lin.get("intercept"))
    if lin.get("ok", True) and slope is not None and icpt is not None:
        ci = _interval(lin.get("slope_ci"))
        parts.append(f"Linear law: blackout task ≈ {slope:.4g} × {_e(axis)} {'+' if icpt >= 0 else '−'} "
                     f"{abs(icpt):.4g}; each unit of {_e(axis)} adds {slope:.4g} tasks"
                     f"{f' (interval {ci})' if ci else ''}, R² = {_fmt(lin.get('r2'))}.")
        lo_hi = lin.get("slope_ci")
        if ci and _num(lo_hi[0]) <= 0 <= _num(lo_hi[1]):
            parts.append(f"The interval includes zero: these runs do not show that {_e(axis)} moves the blackout task.")
    else:
        parts.append(f"No linear law was fitted{': ' + _e(lin.get('reason')) if lin.get('reason') else ''}.")
    expo, coef = _num(powf.get("exponent")), _num(powf.get("coef"))
    if powf.get("ok", True) and expo is not None and coef is not None:
        ci = _interval(powf.get("exponent_ci"))
        parts.append(f"Power law: blackout task ≈ {coef:.4g} × {_e(axis)}<sup>{expo:.3g}</sup>"
                     f"{f' (exponent interval {ci})' if ci else ''}, R² = {_fmt(powf.get('r2'))}.")
    else:
        parts.append(f"No power law was fitted{': ' + _e(powf.get('reason')) if powf.get('reason') else ''}.")
    better = g.get("better")
    if better in ("linear", "power"):
        parts.append(f"The {better} law fits better.")
    else:
        parts.append("Neither law is preferred.")
    return '<p class="law">' + " ".join(parts) + "</p>"


def _laws(analysis: dict | None) -> str:
    groups = (analysis or {}).get("groups") or []
    if not groups:
        return "<p>No capacity analysis was given, so no law was fitted.</p>"
    axis = str(analysis.get("axis") or "capacity")
    rows = []
    for g in groups:
        lin, powf = g.get("linear") or {}, g.get("power") or {}
        n, n_cens = _counts(g)
        rows.append("<tr>" + "".join([
            f"<td>{_e(g.get('label', ''))}</td>",
            f'<td class="num">{n}</td>',
            f'<td class="num">{n_cens}</td>',
            f'<td class="num">{_e(_fmt(lin.get("slope"), ".4g"))}</td>',
            f"<td>{_e(_interval(lin.get('slope_ci'), '.4g') or '—')}</td>",
            f'<td class="num">{_e(_fmt(lin.get("intercept"), ".4g"))}</td>',
            f'<td class="num">{_e(_fmt(lin.get("r2")))}</td>',
            f'<td class="num">{_e(_fmt(powf.get("exponent")))}</td>',
            f"<td>{_e(_interval(powf.get('exponent_ci')) or '—')}</td>",
            f'<td class="num">{_e(_fmt(powf.get("r2")))}</td>',
            f"<td>{_e(g.get('better') or '—')}</td>",
        ]) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("group", "runs", "censored", "slope", "slope interval", "intercept",
                                               "R² (linear)", "exponent", "exponent interval", "R² (power)",
                                               "better"))
    return ("".join(_law_text(g, axis) for g in groups)
            + f'<table id="laws"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _stability_check(results: list[dict], analysis: dict | None) -> str:
    check = (analysis or {}).get("stability")
    source = "from the analysis"
    if not check:
        check, source = _stability_from_results(results), "computed here from the runs' diagnostics"
    share, n = _num(check.get("share_within_one")), int(_num(check.get("n_compared")) or 0)
    if share is None or n == 0:
        return ("<p>No run could be compared: a comparison needs a blackout and a recorded stability number "
                f"above 2 ({_e(source)}).</p>")
    text = (f"<p>In {share:.0%} of the {n} runs compared ({_e(source)}), the first task whose stability number "
            "exceeded 2 was within one task of the blackout task.</p>")
    runs = check.get("runs") or []
    if runs:
        body = "".join(
            f"<tr><td>{_e(r.get('run_id'))}</td><td class=\"num\">{_e(_fmt(r.get('first_unstable'), 'g'))}</td>"
            f"<td class=\"num\">{_e(_fmt(r.get('blackout_task'), 'g'))}</td>"
            f"<td>{'yes' if r.get('agree') else 'no'}</td></tr>" for r in runs)
        text += ("<details><summary>Per run</summary><table><thead><tr><th>run</th><th>first s &gt; 2</th>"
                 f"<th>blackout task</th><th>within one</th></tr></thead><tbody>{body}</tbody></table></details>")
    return text


def _avg_acc(result: dict) -> float | None:
    v = _num((result.get("metrics") or {}).get("avg_acc"))
    if v is None:
        curve = plots.average_accuracy(result)
        v = _num(curve[-1]) if len(curve) else None
    return v


def _runs_table(results: list[dict]) -> str:
    if not results:
        return "<p>No runs.</p>"
    rows = []
    for r in sorted(results, key=_sort_key):
        info, b = run_info(r), r.get("blackout") or {}
        cells = [
            f'<td title="{_e(info["run_id"])}"><code>{_e(str(info["run_id"])[:12])}</code></td>',
            f"<td>{_e(info['method'] or '—')}</td>",
            f'<td class="num">{_e(_fmt(info["lam"], "g"))}</td>',
            f'<td class="num">{_e(info["width"] or "—")}</td>',
            f'<td class="num">{_e(info["seed"] if info["seed"] is not None else "—")}</td>',
            f'<td class="num">{_e(_fmt(b.get("task"), "g"))}</td>',
            f"<td>{_e(b.get('cause') or '—')}</td>",
            f'<td class="num">{_e(_fmt(b.get("retained"), "g"))}</td>',
            f'<td class="num">{_e(_fmt(_avg_acc(r), ".3f"))}</td>',
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("run id", "method", "λ", "width", "seed", "blackout task", "cause",
                                               "retained", "avg acc"))
    return f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _methods_ranking(results: list[dict]) -> str:
    from .compare import CHECKPOINTS, method_table

    rows = method_table(results)
    if len({r["setting"] for r in rows}) < 2:
        return '<p class="skip">One setting only: nothing to rank.</p>'
    body = []
    for r in rows:
        learned = f"{'≥ ' if r['blackout_is_bound'] else ''}{r['tasks_learned']:.1f}"
        causes = ", ".join(f"{k} {v}" for k, v in sorted(r["causes"].items())) or "none"
        accs = "".join(
            f'<td class="num">{"—" if r[f"acc@{k}"] is None else format(r[f"acc@{k}"], ".3f")}'
            f'{"†" if r[f"acc@{k}_after_blackout"] else ""}</td>' for k in CHECKPOINTS)
        body.append(f"<tr><td>{_e(r['setting'])}</td><td class=\"num\">{_e(r['width'])}</td>"
                    f"<td class=\"num\">{r['runs']}</td><td class=\"num\">{learned}</td>"
                    f"<td>{_e(causes)}</td>{accs}</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("setting", "network", "runs", "tasks learned", "blackout causes",
                                               *(f"avg acc after {k}" for k in CHECKPOINTS)))
    return (f'<table id="methods-ranking"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            '<p class="meta">Ranked by tasks learned before blackout (mean over seeds; ≥: some runs never blacked '
            "out, counted at their last task), then by accuracy. †: includes runs that had blacked out before "
            "that task, counted at their accuracy when they blacked out. —: some run did not reach that task.</p>")


def _figures(results: list[dict], analysis: dict | None) -> str:
    out = ["<h3>Capacity</h3>"]
    xs = {_num(p.get("x")) for g in (analysis or {}).get("groups") or [] for p in g.get("points") or []} - {None}
    axis = str((analysis or {}).get("axis") or "capacity")
    if analysis is None:
        out.append('<p class="skip">Capacity figure skipped: no capacity analysis was given.</p>')
    elif len(xs) < 2:
        out.append(f'<p class="skip">Capacity figure skipped: it needs runs at two or more values of {_e(axis)}, '
                   f"and there {'is one' if xs else 'are none'}.</p>")
    else:
        out.append(_figure(lambda: plots.figure_capacity(analysis), "capacity",
                           f"Blackout task against {axis}: dots are seeds, open triangles runs without blackout "
                           "(drawn at their last task, a lower bound), squares group means with intervals, "
                           "solid lines the linear law, dashed lines the power law."))
    out.append("<h3>Stability</h3>")
    if results:
        out.append(_figure(lambda: plots.figure_stability(results), "stability",
                           "Stability number per task (log scale); above the dashed line s = 2 gradient descent on "
                           "the penalised loss is no longer stable. Crosses mark each run's blackout task."))
    else:
        out.append('<p class="skip">Stability figure skipped: there are no runs.</p>')
    out.append("<h3>Methods</h3>")
    if results:
        out.append(_figure(lambda: plots.figure_methods(results), "methods",
                           "Average accuracy over the tasks seen so far, mean over the seeds that reached that task."))
    else:
        out.append('<p class="skip">Methods figure skipped: there are no runs.</p>')
    out.append("<h3>Representative runs</h3>")
    reps = representative_runs(results, analysis)
    if not reps:
        out.append('<p class="skip">No run to show.</p>')
    for why, res in reps[:MAX_REPRESENTATIVES]:
        out.append(f"<h4>{_e(why)}</h4><p class=\"meta\">run {_e(res.get('run_id'))}: {_e(run_label(res))}</p>")
        out.append('<div class="pair">'
                   + _figure(lambda r=res: plots.figure_accuracy_matrix(r), "accuracy matrix",
                             "Accuracy on each task (columns) after training each task (rows).")
                   + _figure(lambda r=res: plots.figure_task_curves(r), "task curves",
                             "Each task's accuracy from when it was trained; dashed: chance.")
                   + "</div>")
    if len(reps) > MAX_REPRESENTATIVES:
        out.append(f"<p class=\"skip\">{len(reps) - MAX_REPRESENTATIVES} more representative runs are not shown "
                   "to keep the report small.</p>")
    return "".join(out)


def _configs(results: list[dict]) -> str:
    if not results:
        return "<p>No runs.</p>"
    return "".join(
        f"<details><summary><code>{_e(r.get('run_id'))}</code> {_e(run_label(r))}</summary>"
        f"<pre>{_e(_json(r.get('config')))}</pre></details>"
        for r in sorted(results, key=_sort_key))


def _versions(results: list[dict]) -> str:
    produced = sorted({str(r.get("version")) for r in results if r.get("version") is not None})
    rows = [("blackout that produced the runs", ", ".join(produced) or "unknown")]
    rows += [(k if k != "blackout" else "blackout that wrote this report", v) for k, v in package_versions().items()]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table id="versions"><tbody>{body}</tbody></table>'


# -- the page -------------------------------------------------------------------------------


def write_report(out: Path | str, results: list[dict], analysis: dict | None, *, title: str,
                 study: dict | None = None) -> Path:
    """Write the HTML report to ``out`` (or ``out/report.html`` when ``out`` is a folder); return its path."""
    out = Path(out)
    if out.is_dir():
        out = out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = list(results or [])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        ("summary", "Summary", _summary(results)),
        ("capacity-law", "Capacity law", _laws(analysis)),
        ("methods-ranking", "Methods ranked", _methods_ranking(results)),
        ("stability-check", "Stability check", _stability_check(results, analysis)),
        ("figures", "Figures", _figures(results, analysis)),
        ("runs-table", "Runs", _runs_table(results)),
        ("configs", "Configurations", _configs(results)),
    ]
    if study is not None:
        sections.append(("study", "Study", f"<details open><summary>Study specification</summary>"
                                           f"<pre>{_e(_json(study))}</pre></details>"))
    sections.append(("versions", "Versions", _versions(results)))
    body = "".join(f'<section id="{sid}"><h2>{_e(head)}</h2>{content}</section>' for sid, head, content in sections)
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="meta">Generated {when}.</p>{body}</body></html>\n'
    )
    out.write_text(page, encoding="utf-8")
    return out
