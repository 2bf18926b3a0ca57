"""Text renderings for a terminal: a run, a capacity analysis, a method ranking. Pure functions to str."""

from __future__ import annotations

import math

from ..experiment.forecast import from_recorded
from ..experiment.result import Result, finite_or_none
from ..study.analysis import Analysis, Fit, Interval


def _fmt(v, pct: bool = True) -> str:
    v = finite_or_none(v)
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3g}"


def _forecast(d: dict, budget: int) -> str:
    """The blackout task forecast after this task: "none" past the budget, "" when none was made."""
    f = from_recorded(d, budget)
    return "" if f is None else "none" if f.task is None else str(f.task)


def render_run(r: Result) -> str:
    """The accuracy matrix, the metrics, the per-task diagnostics and the verdict."""
    c = r.config
    settings = " ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.method_settings.items())
    lines = [
        f"blackout {r.version} · run {r.run_id} · seed {r.seed}",
        f"{c['data']['dataset']} {c['data']['stream']} · {c['model']['arch']} hidden {','.join(map(str, r.hidden))}"
        f" ({r.n_params:,} parameters) · {r.method}{' ' + settings if settings else ''}"
        f" · {c['train']['optimizer']} lr {c['train']['lr']:g}",
        f"data: {r.data['source']} ({r.data['n_train']:,} train / {r.data['n_test']:,} test) · {r.split}"
        f" · {r.scenario}-incremental",
    ]
    if r.data.get("note"):
        lines.append(f"note: {r.data['note']}")
    n, T = r.acc.shape
    cols = T if c["train"]["eval_all"] else min(T, n)
    lines += [
        "",
        "accuracy (%) on task j (columns) after training task i (rows):",
        "after " + "".join(f"{j + 1:>6}" for j in range(cols)),
    ]
    for i in range(n):
        cells = "".join(f"{'':>6}" if math.isnan(v) else f"{100 * v:6.1f}" for v in r.acc[i, :cols])
        lines.append(f"{i + 1:>5} {cells}")
    m = r.metrics
    lines += [
        "",
        f"average accuracy {_fmt(m.get('avg_acc'))} · backward transfer {_fmt(m.get('bwt'))}"
        f" · forward transfer {_fmt(m.get('fwt'))} · forgetting {_fmt(m.get('forgetting'))}",
        "",
        " task      loss   penalty  importance  stability  new-task acc  dead units  forecast",
    ]
    n_tasks = int(c["data"]["tasks"])
    for d in r.diagnostics:
        lines.append(
            f"{d['task']:>5}  {_fmt(d.get('train_loss'), False):>8}  {_fmt(d.get('penalty'), False):>8}"
            f"  {_fmt(d.get('importance_max'), False):>10}  {_fmt(d.get('stability'), False):>9}"
            f"  {_fmt(d.get('new_task_acc')):>12}  {_fmt(d.get('dead_units')):>10}  {_forecast(d, n_tasks):>8}"
        )
    v = r.verdict
    kept = f" ({', '.join(map(str, v.retained_tasks))})" if v.retained_tasks else ""
    lines += ["", f"{v.text(n)} · retained {v.retained} of {n} tasks{kept}"]
    return "\n".join(lines)


def _bound(s: Interval) -> str:
    """A group's mean blackout task: "> 30" when every run was censored, else the mean with its interval."""
    if s.n_censored == s.n:
        return f"> {s.mean - 1:g} (no blackout)"
    ci = "" if s.ci_lo is None else f" [{s.ci_lo:.1f}, {s.ci_hi:.1f}]"
    return f"{s.mean:.2f}{ci}" + (" (lower bound)" if s.mean_is_lower_bound else "")


def _ci(fit: Fit, spec: str) -> str:
    lo, hi = fit.b_ci or (math.nan, math.nan)
    return f"[{lo:{spec}}, {hi:{spec}}]"


def render_analysis(a: Analysis) -> str:
    lines = [
        f"{a.n_runs} runs · capacity axis: {a.axis} · {a.n_censored} censored (no blackout within the task budget)"
    ]
    lines += [f"data: {d}" for d in a.data]
    if a.n_never_learned:
        lines.append(f"{a.n_never_learned} runs never learned a task and are left out of the law")
    for g in a.groups:
        lines += ["", f"[{g.label}]", f"  {a.axis:>8}  runs  censored  blackout task: mean [CI]"]
        for s in g.summary:
            lines.append(f"  {s.x:>8g}  {s.n:>4}  {s.n_censored:>8}  {_bound(s)}")
        lin, pw = g.linear, g.power
        r2 = "n/a" if lin.r2 is None else f"{lin.r2:.3f}"
        lines.append(
            f"  linear: blackout task = {lin.a:.3g} + {lin.b:.4g} x {a.axis}  slope CI "
            f"{_ci(lin, '.4g')}  R2 {r2}  ({lin.method})"
            if lin.ok
            else f"  linear: no fit ({lin.reason})"
        )
        lines.append(
            f"  power:  blackout task = {pw.a:.3g} x {a.axis}^{pw.b:.3g}  exponent CI {_ci(pw, '.3g')}"
            if pw.ok
            else f"  power:  no fit ({pw.reason})"
        )
        if g.better:
            lines.append(f"  better by AIC: {g.better} (delta {g.delta_aic or 0:.2f})")
    st, pr = a.stability, a.predictor
    rules = []  # one paragraph under the fits: the forecast, the drift predictor, then the plain rule
    for h in a.forecast.horizons:
        if h.n:
            rules.append(
                f"forecast after {h.k} tasks: within max({h.tasks}, {h.share:.0%}) of the blackout task in "
                f"{h.n_right} of {h.n} runs ({h.share_right:.0%}; {h.n_gone} blacked out by then)"
            )
    if pr.share_right is not None:  # there are runs
        rules.append(
            f"predictor ({pr.name}): names {100 * pr.share_right:.0f}% of {pr.n_runs} runs right "
            f"(within one task: {pr.n_agree} of {pr.n_compared} with both)"
        )
    if st.share_within_one is not None:  # there are runs with both tasks
        rules.append(
            f"stability check: first task with s >= {st.threshold:g} agrees with the blackout task within one"
            f" task in {st.n_agree} of {st.n_compared} runs ({100 * st.share_within_one:.0f}%)"
            + (f"; {st.n_left_out} runs left out (no gradient-applied penalty with SGD)" if st.n_left_out else "")
        )
    return "\n".join(lines + ([""] + rules if rules else []))


def render_methods(rows: list[dict], checkpoints: tuple[int, ...]) -> str:
    head = (
        f"{'setting':<30} {'network':>10} {'runs':>4} {'learned':>8}  {'causes':<20}"
        + "".join(f" {'acc@' + str(k):>8}" for k in checkpoints)
        + f" {'new-task':>8} {'retained':>8} {'kept':>11}"
    )
    lines = [
        "methods ranked by tasks learned before blackout (>=: some runs never blacked out;"
        " *: counts runs already blacked out at their last accuracy):",
        head,
    ]
    for r in rows:
        learned = f"{'>=' if r['blackout_is_bound'] else ''}{r['tasks_learned']:.1f}"
        causes = ", ".join(f"{k} {v}" for k, v in sorted(r["causes"].items())) or "-"
        accs = "".join(
            f" {'-' if r[f'acc@{k}'] is None else format(r[f'acc@{k}'], '.3f') + ('*' if r[f'acc@{k}_after_blackout'] else ' '):>8}"
            for k in checkpoints
        )
        new = "-" if r["new_task_acc"] is None else f"{r['new_task_acc']:.3f}"
        lines.append(
            f"{r['setting']:<30} {r['width']:>10} {r['runs']:>4} {learned:>8}  {causes:<20}{accs}"
            f" {new:>8} {r['retained']:>8.1f} {kept(r):>11}"
        )
    return "\n".join(
        lines + ["kept: floats the method holds between tasks after the last one (s: of them, stored samples)"]
    )


def kept(row: dict) -> str:
    """What a setting keeps, in floats, with an "s" when part of it is stored training samples."""
    if row["memory_floats"] is None:
        return "-"
    return f"{row['memory_floats']:,.0f}" + ("s" if row["memory_samples"] else "")
