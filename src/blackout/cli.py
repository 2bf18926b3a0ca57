"""The command line: the only module that prints or exits.

Every user error (a ``BlackoutError``) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .config import FIELD_INFO, FIELD_SECTION, FIELD_TYPE, SECTIONS, RunConfig, checked_setting, flat_settings, load_toml
from .errors import BlackoutError, ConfigError
from .presets import RUN_PRESETS, run_preset


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 (not a usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def add_setting_flags(p: argparse.ArgumentParser, as_lists: bool = False) -> None:
    """One flag per config field, help text from the field; defaults None so only given flags override."""
    for section, cls in SECTIONS.items():
        group = p.add_argument_group(f"{section} settings")
        for name in cls.__dataclass_fields__:
            info = FIELD_INFO[name]
            flag = "--" + name.replace("_", "-")
            helptext = info.metadata["help"]
            default = info.default
            if FIELD_TYPE[name] is bool and not as_lists:
                group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                   help=f"{helptext} (default: {default})")
            else:
                shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
                extra = ""
                if as_lists:
                    extra = (" (to sweep: values separated by ';', e.g. 50,50;100,100, or commas for one-entry "
                             "values, e.g. 25,50,100; one multi-entry value ends with ';', e.g. 8,16;)"
                             if isinstance(default, tuple) else " (comma-separated list to sweep)")
                group.add_argument(flag, dest=name, metavar=_metavar(name), default=None,
                                   help=f"{helptext}{extra} (default: {shown})")


def _metavar(name: str) -> str:
    choices = FIELD_INFO[name].metadata["choices"]
    return "{" + ",".join(choices) + "}" if choices else name.upper()


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k in FIELD_SECTION and v is not None}


def build_config(args: argparse.Namespace) -> RunConfig:
    """defaults < preset < --config file < flags, merged first and validated once as a whole."""
    settings: dict[str, Any] = {}
    if args.preset:
        settings.update(run_preset(args.preset))
    if args.config:
        where = f"{args.config}: "
        settings.update(checked_setting(k, v, where) for k, v in flat_settings(load_toml(args.config), where).items())
    settings.update(checked_setting(k, v, "--") for k, v in given_settings(args).items())
    return RunConfig.from_flat(settings)


# -- blackout run ---------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from .outputs import write_run_folder
    from .train import run

    cfg = build_config(args)
    if args.check:
        print(cfg.canonical_json())
        return 0
    bar = _task_bar(cfg.data.tasks, args.json or args.quiet)
    result = run(cfg, data_dir=args.data_dir, on_task=lambda t, row: bar.update(1) if bar else None)
    if bar:
        bar.close()
    out = Path(args.out) if args.out else Path("runs") / result.run_id
    write_run_folder(result, out)
    if args.json:
        print(json.dumps(result.to_dict()))
    elif not args.quiet:
        print(render_run(result))
        print(f"\nresults: {out}/")
    return 0


def _task_bar(total: int, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="task", desc="tasks", file=sys.stderr, leave=False)


def render_run(r) -> str:
    """The accuracy matrix, the metrics, the per-task diagnostics and the verdict, for a terminal."""
    c = r.config
    lines = [
        f"blackout {r.version} · run {r.run_id} · seed {r.seed}",
        f"{c['data']['dataset']} {c['data']['stream']} · {c['model']['arch']} hidden {','.join(map(str, c['model']['hidden']))}"
        f" ({r.n_params:,} parameters) · {c['method']['method']} lam {c['method']['lam']:g}"
        f" · {c['train']['optimizer']} lr {c['train']['lr']:g}",
        f"data: {r.data['source']} ({r.data['n_train']:,} train / {r.data['n_test']:,} test)",
    ]
    if r.data.get("note"):
        lines.append(f"note: {r.data['note']}")
    n, T = r.acc.shape
    cols = min(T, n if not c["train"]["eval_all"] else T)
    lines += ["", "accuracy (%) on task j (columns) after training task i (rows):",
              "after " + "".join(f"{j + 1:>6}" for j in range(cols))]
    for i in range(n):
        cells = "".join(f"{'':>6}" if np.isnan(v) else f"{100 * v:6.1f}" for v in r.acc[i, :cols])
        lines.append(f"{i + 1:>5} {cells}")
    m = r.metrics
    fmt = lambda v, pct=True: "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else (f"{100 * v:.1f}%" if pct else f"{v:.3g}")
    lines += ["", f"average accuracy {fmt(m['avg_acc'])} · backward transfer {fmt(m['bwt'])}"
                  f" · forward transfer {fmt(m['fwt'])} · forgetting {fmt(m['forgetting'])}", "",
              " task   loss      penalty   Fisher max  stability  new-task acc"]
    for d in r.diagnostics:
        lines.append(f"{d['task']:>5}  {fmt(d['train_loss'], False):>8}  {fmt(d['penalty'], False):>8}"
                     f"  {fmt(d['fisher_max'], False):>10}  {fmt(d['stability'], False):>9}  {fmt(d['new_task_acc']):>12}")
    b = r.blackout
    verdict = (f"BLACKOUT at task {b['task']} ({b['cause']})" if b["task"] else f"no blackout in {n} tasks")
    lines += ["", f"{verdict} · retained {b['retained']} of {n} tasks"
                  + (f" ({', '.join(map(str, b['retained_tasks']))})" if b["retained_tasks"] else "")]
    return "\n".join(lines)


# -- studies: sweep, analyze, report, export, demo --------------------------------------------

def _spec_from_args(args: argparse.Namespace):
    """Preset < --spec file < flags. A flag with one value sets the base; several make an axis."""
    from .presets import study_preset
    from .sweep import SweepSpec, load_spec, parse_axis, parse_grids

    spec = SweepSpec(RunConfig())
    if args.preset:
        p = study_preset(args.preset)
        where = lambda key: f"preset {args.preset}: "
        base = RunConfig.from_flat(run_preset(p["preset"]), where=where("")) if p["preset"] else RunConfig()
        base = RunConfig.from_flat(p["base"], base, where=where(""))
        spec = SweepSpec(base, parse_grids(p["grid"], where), args.preset)
    if args.spec:
        loaded = load_spec(args.spec, spec.base)
        spec = SweepSpec(loaded.base, loaded.grids if loaded.grids != ({},) else spec.grids, loaded.name or spec.name)
    flags = given_settings(args)
    if args.seeds:
        flags["seed"] = args.seeds
    spec = spec.with_settings({key: parse_axis(key, raw, "--") for key, raw in flags.items()})
    configs = spec.configs()  # every combination validated before any run starts
    return spec, configs


def _open_store(study: Path, name: str | None, create: bool):
    from .store import Store
    from .sweep import STORE_FILE

    path = study / STORE_FILE
    if not create and not path.exists():
        raise ConfigError(f"{study}: no study here (missing {STORE_FILE}); run `blackout sweep {study}` first")
    return Store(path, name or study.resolve().name, create=create)


def _study_name(study: Path) -> str:
    meta = study / "sweep.json"
    if meta.exists():
        return json.loads(meta.read_text()).get("study") or study.resolve().name
    return study.resolve().name


def cmd_sweep(args: argparse.Namespace) -> int:
    spec, configs = _spec_from_args(args)
    study = Path(args.study)
    name = spec.name or _study_name(study)
    store = _open_store(study, name, create=True)  # refuses another study's store before any work
    _check_data(configs, args.data_dir)
    (study / "sweep.json").write_text(json.dumps({**spec.to_dict(), "study": name}, indent=1))
    report = sweep_with_progress(configs, store, args.jobs, args.ray, args.data_dir, args.verbose, not args.no_batch)
    counts = store.status_counts()
    print(f"study {study}: {len(configs)} runs · {report.done_before} already done · {report.ran} ran"
          f" · {report.failed} failed · {report.skipped_elsewhere} held by another sweep"
          f" · {report.batched} trained in batched ensembles")
    for rid, msg in report.failures[:5]:
        print(f"  failed {rid}: {msg}")
    print(f"store: {store.path} ({counts['done']} done, {counts['failed']} failed, {counts['pending']} pending)")
    print(f"next: blackout analyze {study}  ·  blackout report {study}")
    store.close()
    return 1 if report.failed else 0


def _check_data(configs, data_dir: str | None) -> None:
    """Load each dataset once before any run starts: a missing file fails the sweep, not every run."""
    from .data.sources import load_dataset

    for name in sorted({c.data.dataset for c in configs}):
        load_dataset(name, data_dir)


def sweep_with_progress(configs, store, jobs: int | None, ray: str | None, data_dir: str | None, verbose: bool,
                        batched: bool = True):
    from .sweep import LocalPool, RayPool, run_sweep

    pool = RayPool(ray, jobs) if ray else LocalPool(jobs)
    bar = None
    if sys.stderr.isatty() and not verbose:
        from tqdm import tqdm

        bar = tqdm(total=len(configs), unit="run", desc="sweep", file=sys.stderr)
        bar.update(len(configs) - len(store.todo([c.run_id for c in configs])))
    failures = 0

    def on_event(kind: str, rid: str, out: dict) -> None:
        nonlocal failures
        failures += kind == "failed"
        if bar:
            bar.update(1)
            bar.set_postfix(failed=failures)
        elif verbose:
            r = out.get("result") or {}
            b = (r.get("blackout") or {})
            what = f"blackout {b.get('task')} ({b.get('cause')})" if b.get("task") else "no blackout"
            print(f"{kind:6} {rid} {what if kind == 'done' else out.get('error')} [{out['seconds']:.1f}s]", flush=True)

    where = f"Ray at {ray}" if ray else f"{pool.jobs} local processes"
    print(f"sweep: {len(configs)} runs on {where}", file=sys.stderr)
    try:
        return run_sweep(configs, store, pool, data_dir, on_event, batched)
    finally:
        if bar:
            bar.close()


def cmd_analyze(args: argparse.Namespace) -> int:
    from .capacity import analyze

    study = Path(args.study)
    with _open_store(study, _study_name(study), create=False) as store:
        results = store.results()
    analysis = analyze(results, axis=args.axis, n_boot=args.bootstrap)
    if args.json:
        print(json.dumps(analysis))
    else:
        print(render_analysis(analysis))
        if args.methods:
            print("\n" + render_methods(results))
    return 0


def render_methods(results: list[dict]) -> str:
    from .compare import CHECKPOINTS, method_table

    head = f"{'setting':<28} {'network':>14} {'runs':>4} {'learned':>8}  {'causes':<22}" + "".join(
        f" {'acc@' + str(k):>7}" for k in CHECKPOINTS)
    lines = ["methods ranked by tasks learned before blackout (>=: some runs never blacked out;"
             " *: counts runs already blacked out at their last accuracy):", head]
    for r in method_table(results):
        learned = f"{'>=' if r['blackout_is_bound'] else ''}{r['tasks_learned']:.1f}"
        causes = ", ".join(f"{k} {v}" for k, v in sorted(r["causes"].items())) or "-"
        accs = "".join(f" {'-' if r[f'acc@{k}'] is None else format(r[f'acc@{k}'], '.3f') + ('*' if r[f'acc@{k}_after_blackout'] else ' '):>7}"
                       for k in CHECKPOINTS)
        lines.append(f"{r['setting']:<28} {r['width']:>14} {r['runs']:>4} {learned:>8}  {causes:<22}{accs}")
    return "\n".join(lines)


def render_analysis(a: dict) -> str:
    lines = [f"{a['n_runs']} runs · capacity axis: {a['axis']} · {a['n_censored']} censored (no blackout within the task budget)"]
    for g in a["groups"]:
        lines += ["", f"[{g['label']}]", f"  {a['axis']:>8}  runs  censored  blackout task: mean [CI]"]
        for s in g["summary"]:
            ci = "" if s["ci_lo"] is None else f" [{s['ci_lo']:.1f}, {s['ci_hi']:.1f}]"
            bound = " (lower bound)" if s.get("mean_is_lower_bound") else ""
            lines.append(f"  {s['x']:>8g}  {s['n']:>4}  {s['n_censored']:>8}  {s['mean']:.2f}{ci}{bound}")
        lin, pw = g["linear"], g["power"]
        if lin.get("ok"):
            lines.append(f"  linear: blackout task = {lin['intercept']:.3g} + {lin['slope']:.4g} x {a['axis']}"
                         f"  slope CI [{lin['slope_ci'][0]:.4g}, {lin['slope_ci'][1]:.4g}]  R2 {lin['r2'] if lin['r2'] is None else round(lin['r2'], 3)}"
                         f"  ({lin['method']})")
        else:
            lines.append(f"  linear: no fit ({lin.get('reason')})")
        if pw.get("ok"):
            lines.append(f"  power:  blackout task = {pw['coef']:.3g} x {a['axis']}^{pw['exponent']:.3g}"
                         f"  exponent CI [{pw['exponent_ci'][0]:.3g}, {pw['exponent_ci'][1]:.3g}]")
        else:
            lines.append(f"  power:  no fit ({pw.get('reason')})")
        if g.get("better"):
            lines.append(f"  better by AIC: {g['better']} (delta {g.get('delta_aic') or 0:.2f})")
    st = a.get("stability") or {}
    if st.get("n_compared"):
        lines += ["", f"stability check: first task with s >= 2 agrees with the blackout task within one task"
                      f" in {st['n_agree']} of {st['n_compared']} runs ({100 * st['share_within_one']:.0f}%)"]
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    path, analysis = build_report(Path(args.study), args.axis, args.out)
    print(f"report: {path}")
    return 0


def build_report(study: Path, axis: str, out: str | None = None):
    from . import plots
    from .capacity import analyze
    from .report import write_report

    with _open_store(study, _study_name(study), create=False) as store:
        results = store.results()
    analysis = analyze(results, axis=axis)
    figures = study / "figures"
    figures.mkdir(exist_ok=True)
    for name, draw, arg in (("capacity", plots.capacity, analysis), ("stability", plots.stability, results),
                            ("methods", plots.methods, results)):
        try:
            draw(arg, figures / name)
        except plots.NothingToPlot:
            pass
    spec = json.loads((study / "sweep.json").read_text()) if (study / "sweep.json").exists() else None
    path = write_report(Path(out) if out else study / "report.html", results, analysis,
                        title=f"blackout study: {_study_name(study)}", study=spec)
    return path, analysis


def cmd_export(args: argparse.Namespace) -> int:
    study = Path(args.study)
    with _open_store(study, _study_name(study), create=False) as store:
        out = store.export(Path(args.out) if args.out else study / f"results.{args.format}", args.format)
    print(f"exported: {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .presets import DEMO
    from .sweep import SweepSpec, parse_grids

    spec = SweepSpec(RunConfig.from_flat(DEMO["base"]), parse_grids(DEMO["grid"], lambda key: "demo: "), "demo")
    configs = spec.configs()
    study = Path(args.out)
    store = _open_store(study, "demo", create=True)
    (study / "sweep.json").write_text(json.dumps(spec.to_dict(), indent=1))
    print(DEMO["about"])
    rep = sweep_with_progress(configs, store, args.jobs, None, None, args.verbose)
    store.close()
    path, analysis = build_report(study, "width")
    print(render_analysis(analysis))
    print(f"\n{rep.ran} runs ran ({rep.batched} in batched ensembles), {rep.done_before} were already done,"
          f" {rep.failed} failed")
    print(f"report: {path}")
    return 1 if rep.failed else 0


def _study_parsers(sub) -> None:
    s = sub.add_parser("sweep", help="run a grid of settings into a study folder (resumable)",
                       description="Run every combination of the given settings into STUDY/results.sqlite. "
                                   "Re-running does only what is missing or failed.")
    s.add_argument("study", help="study folder (created if needed)")
    s.add_argument("--preset", help="a named study grid (seed-capacity, ...)")
    s.add_argument("--spec", metavar="FILE.toml", help="sweep file with [base] and [grid] tables")
    s.add_argument("--seeds", help="seeds to sweep, e.g. 0-4 or 0,3,7")
    s.add_argument("--jobs", type=int, help="local worker processes (default: number of cores)")
    s.add_argument("--ray", metavar="ADDRESS", help='run on a Ray cluster: "auto" or host:port')
    s.add_argument("--data-dir", help="directory holding the dataset's IDX files")
    s.add_argument("--verbose", action="store_true", help="one line per finished run instead of a progress bar")
    s.add_argument("--no-batch", action="store_true",
                   help="train every run alone (default: runs that share an MLP architecture and differ in seed, "
                        "lambda or lr train together as one batched model, with identical results)")
    add_setting_flags(s, as_lists=True)
    s.set_defaults(func=cmd_sweep)

    for name, func, helptext in (("analyze", cmd_analyze, "fit the capacity law of a study"),
                                 ("report", cmd_report, "write the study's self-contained HTML report")):
        a = sub.add_parser(name, help=helptext)
        a.add_argument("study")
        a.add_argument("--axis", choices=("width", "depth", "params"), default="width", help="capacity axis")
        if name == "analyze":
            a.add_argument("--json", action="store_true", help="print the analysis as JSON")
            a.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
            a.add_argument("--methods", action="store_true",
                           help="also rank the settings by tasks learned and accuracy after 10, 20, 30 tasks")
        else:
            a.add_argument("--out", help="report file (default: STUDY/report.html)")
        a.set_defaults(func=func)

    e = sub.add_parser("export", help="export a study's runs as CSV or Parquet")
    e.add_argument("study")
    e.add_argument("--format", choices=("csv", "parquet"), default="csv")
    e.add_argument("--out", help="output file (default: STUDY/results.FORMAT)")
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("demo", help="a small capacity study on the embedded digits, with its report")
    d.add_argument("--out", default="studies/demo", help="study folder (default: studies/demo)")
    d.add_argument("--jobs", type=int, help="worker processes (default: number of cores)")
    d.add_argument("--verbose", action="store_true")
    d.set_defaults(func=cmd_demo)



# -- entry point ----------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="blackout", description="How many tasks a network learns before blackout, and why.")
    p.add_argument("--version", action="version", version=f"blackout {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="train one network through a sequence of tasks",
                       description="Train one network through a sequence of tasks and report the accuracy matrix, "
                                   "metrics, per-task diagnostics and the blackout verdict.")
    r.add_argument("--preset", choices=sorted(RUN_PRESETS), help="start from a named configuration")
    r.add_argument("--config", metavar="FILE.toml", help="settings file ([data], [model], ... sections or flat keys); flags override it")
    r.add_argument("--data-dir", help="directory holding the dataset's IDX files (else the user cache, then download)")
    r.add_argument("--out", help="results folder (default: runs/RUN_ID)")
    r.add_argument("--json", action="store_true", help="print the result as one JSON object")
    r.add_argument("--quiet", action="store_true", help="print nothing; only write the results folder")
    r.add_argument("--check", action="store_true", help="validate and print the canonical config, train nothing")
    add_setting_flags(r)
    r.set_defaults(func=cmd_run)

    m = sub.add_parser("methods", help="list the continual-learning methods")
    m.set_defaults(func=cmd_methods)
    _study_parsers(sub)
    return p


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS

    for name, cls in sorted(METHODS.items()):
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        print(f"{name:12} {doc}")
    return 0




def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (a scheduler, `kill`) stops as Ctrl-C does: in-flight sweep runs are handed back.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        args = parser().parse_args(argv)
        return int(args.func(args) or 0)
    except BlackoutError as e:
        print(f"blackout: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("blackout: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
