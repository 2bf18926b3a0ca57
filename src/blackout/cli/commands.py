"""Each command's arguments (``args_NAME``) and what it does (``cmd_NAME``), over ``blackout.api``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, cast

from ..config import FIXED, method_settings, setting_of
from ..errors import ConfigError
from ..files import given
from ..numerics import NUMERICS_VERSION

REMEDIES = (
    "a smaller --lr or --lam, a decaying importance (--method online-ewc --gamma 0.9), the proximal "
    "step (--method ewc-prox or online-ewc-prox) or a capped curvature (--method ewc-capped); "
    "see docs/findings.md"
)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 written plainly."""
    if not (text.isascii() and text.strip().isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def path_arg(text: str) -> str:
    """An argparse type: the rule of ``files.given``, in argparse's own words."""
    try:
        given(text, "path")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("path: ")) from None
    return text


# -- settings as flags ------------------------------------------------------------------------


def add_setting_flags(p: argparse.ArgumentParser, as_lists: bool = False) -> None:
    """One flag per setting, help text from its declaration; defaults None so only given flags override."""
    groups: dict[str, Any] = {}
    entries = [(name, section, s, "") for name, (section, s) in FIXED.items()]
    entries.insert(
        next(i for i, e in enumerate(entries) if e[1] == "train"), ("method", "method", setting_of("method"), "")
    )
    at = next(i for i, e in enumerate(entries) if e[1] == "train")
    entries[at:at] = [(name, "method", s, f" ({', '.join(owners)})") for name, (s, owners) in method_settings().items()]
    for name, section, s, owners in entries:
        group = groups.setdefault(section, p.add_argument_group(f"{section} settings"))
        flag = "--" + name.replace("_", "-")
        default = ",".join(map(str, s.default)) if isinstance(s.default, tuple) else s.default
        shown = "" if owners else f" (default: {default})"
        if s.kind is bool:  # alike in run and sweep: --prox (true), --no-prox, --prox false, --prox true,false
            group.add_argument(
                flag,
                dest=name,
                nargs="?",
                const="true",
                default=None,
                metavar="true,false" if as_lists else "BOOL",
                help=f"{s.help}{owners}{shown}; {flag} alone: true, --no-{flag[2:]}: false",
            )
            group.add_argument(
                "--no-" + flag[2:], dest=name, action="store_const", const="false", help=argparse.SUPPRESS
            )
            continue
        extra = ""
        if as_lists:
            extra = (
                " (to sweep: values separated by ';', e.g. 50,50;100,100, or commas for one-entry values, "
                "e.g. 25,50,100; one multi-entry value ends with ';', e.g. 8,16;)"
                if s.kind is tuple
                else " (comma-separated list to sweep)"
            )
        metavar = "{" + ",".join(s.choices) + "}" if s.choices else name.upper()
        group.add_argument(flag, dest=name, metavar=metavar, default=None, help=f"{s.help}{owners}{extra}{shown}")


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    names = set(FIXED) | {"method"} | set(method_settings())
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


# -- blackout run -------------------------------------------------------------------------------


def args_run(r: argparse.ArgumentParser) -> None:
    from ..presets import RUN_PRESETS

    r.add_argument("--preset", choices=sorted(RUN_PRESETS), help="start from a named configuration")
    r.add_argument(
        "--config",
        metavar="FILE.toml",
        help="settings file ([data], [model], ... sections or flat keys); flags override it",
    )
    r.add_argument("--data-dir", help="directory holding the dataset's IDX files (else the user cache, then download)")
    r.add_argument("--out", type=path_arg, help="results folder (default: runs/RUN_ID); created if missing")
    r.add_argument("--json", action="store_true", help="print the result as one JSON object")
    r.add_argument("--quiet", action="store_true", help="print nothing; only write the results folder")
    r.add_argument("--check", action="store_true", help="validate and print the canonical config, train nothing")
    add_setting_flags(r)


def build_config(args: argparse.Namespace):
    """defaults < preset < --config file < flags, merged first and validated once as a whole."""
    from ..api import config

    flags = {k: v for k, v in given_settings(args).items()}
    return config(args.preset, args.config, **flags)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    if args.check:
        print(cfg.canonical_json())
        return 0
    return _train(cfg, args)


def _train(cfg, args: argparse.Namespace) -> int:
    """Train ``cfg`` with the terminal's progress, warnings and forecasts; write and print its result."""
    from ..api import run
    from ..experiment.data.sources import identified, load_dataset
    from ..experiment.forecast import LIMIT, Forecast, Watch
    from ..experiment.outputs import check_out_dir, write_run_folder
    from .render import render_run

    cfg = identified(cfg, load_dataset(cfg.data.dataset, args.data_dir))  # its run id names the data it reads
    out = check_out_dir(Path(args.out) if args.out else Path("runs") / cfg.run_id)  # before any training
    bar = _task_bar(cfg.data.tasks, args.json or args.quiet)
    watch = Watch(cfg.data.tasks)

    def on_task(t: int, info: dict) -> None:
        if bar:
            bar.update(1)
        say = bar.write if bar else lambda m: print(m, file=sys.stderr)
        if args.quiet or not info.get("stability_applies"):
            return
        d = info["diagnostics"]
        for kind, v in watch.after(t + 1, d, info.get("next_stability")):
            if kind == "unstable":
                say(
                    f"blackout: warning: after task {t + 1} the stability number lr x lambda x max importance is {v:.2f}"
                    f" (>= {LIMIT:g}): some weights' penalty is now unstable under this step size; such runs diverge"
                    f" once a task's inputs reach those weights. Remedies: {REMEDIES}."
                )
            elif kind == "forecast":
                say(f"blackout: forecast after task {t + 1}: {cast(Forecast, v).text()}.")
            else:
                why = (
                    f"an unstable weight has grown to {d['unstable_drift']:.3g} from its anchor"
                    if kind == "drift"
                    else f"the stability number for task {t + 2} is {info['next_stability']:.2f}"
                )
                say(f"blackout: warning: {why}; blackout is expected around task {v}. Remedies: {REMEDIES}.")
        if t == 1 and not info.get("forecasts"):
            say(
                f"blackout: no forecast of the blackout task for {cfg.method.method}: it is designed and scored"
                f" for ewc only (docs/findings.md)."
            )

    result = run(cfg, data_dir=args.data_dir, on_task=on_task)
    if bar:
        bar.close()
    write_run_folder(result, out)
    if args.json:
        print(json.dumps(result.to_dict()))
    elif not args.quiet:
        print(render_run(result))
        print(f"\nresults: {out}/")
    return 0


def args_plan(p: argparse.ArgumentParser) -> None:
    from ..experiment.plan import KNOBS

    args_run(p)
    p.add_argument("--budget", type=positive_int, required=True, help="tasks the planned run must survive")
    p.add_argument("--for", dest="knob", choices=KNOBS, default="lam", help="the setting to plan (default: lam)")
    p.add_argument("--probe", type=positive_int, default=3, help="tasks of the probe run (default: 3)")
    p.add_argument(
        "--apply",
        action="store_true",
        help="then run the planned configuration (with --json: a second line, its result)",
    )


def cmd_plan(args: argparse.Namespace) -> int:
    from ..api import plan
    from ..experiment.outputs import check_out_dir

    cfg = build_config(args)
    if args.check:
        print(cfg.canonical_json())
        return 0
    if args.apply and args.out:
        check_out_dir(Path(args.out))  # before the probe
    p = plan(cfg, budget=args.budget, knob=args.knob, probe=args.probe, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(p.to_dict()))
    elif not args.quiet:
        print(p.text())
        if p.curve:
            print("forecast stability number by task: " + " ".join(f"{t + 1}:{s:.2f}" for t, s in enumerate(p.curve)))
    if args.apply and p.config is not None:
        if not (args.json or args.quiet):
            print(f"\napplying: {p.knob} {p.value:g} for {p.budget} tasks\n")
        return _train(p.config, args)
    return 0


def _task_bar(total: int, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="task", desc="tasks", file=sys.stderr, leave=False)


# -- studies --------------------------------------------------------------------------------------


def args_sweep(s: argparse.ArgumentParser) -> None:
    s.add_argument("study", type=path_arg, help="study folder (created if needed)")
    s.add_argument("--preset", help="a named study grid (seed-capacity, methods-blackout, keep-learning, ...)")
    s.add_argument("--spec", metavar="FILE.toml", help="sweep file with [base] and [grid] tables")
    s.add_argument("--seeds", help="seeds to sweep, e.g. 0-4 or 0,3,7")
    s.add_argument("--jobs", type=positive_int, help="local worker processes (default: number of cores)")
    s.add_argument("--ray", metavar="ADDRESS", help='run on a Ray cluster: "auto" or host:port')
    s.add_argument("--data-dir", help="directory holding the dataset's IDX files")
    s.add_argument("--verbose", action="store_true", help="one line per finished run, also on a terminal")
    s.add_argument(
        "--no-batch",
        action="store_true",
        help="train every run alone (default: runs that share an MLP architecture and differ in seed, "
        "lr or a method's numeric settings train together as one stacked model, with identical results)",
    )
    s.add_argument("--extend", action="store_true", help="add runs of a different grid to an existing study")
    s.add_argument(
        "--check", action="store_true", help="validate every combination and print how many runs, run nothing"
    )
    add_setting_flags(s, as_lists=True)


def _study(args: argparse.Namespace):
    from ..api import Study

    return Study(args.study)


def cmd_sweep(args: argparse.Namespace) -> int:
    flags = given_settings(args)
    if args.seeds is not None:
        flags["seed"] = args.seeds
    study = _study(args)
    if args.check:
        spec = study.spec(args.preset, args.spec, **flags)
        configs = spec.configs()
        print(
            f"{len(configs)} runs, every combination valid; methods: "
            f"{', '.join(sorted({c.method.method for c in configs}))}"
        )
        return 0
    progress = Progress(verbose=args.verbose)
    report = study.sweep(
        args.preset,
        args.spec,
        jobs=args.jobs,
        ray=args.ray,
        data_dir=args.data_dir,
        batched=not args.no_batch,
        extend=args.extend,
        on_event=progress.event,
        on_plan=progress.plan,
        **flags,
    )
    progress.close()
    _summary(study, report)
    return 1 if report.failed else 0


def _summary(study, report) -> None:
    alone = "; ".join(f"{n} alone: {why}" for why, n in report.alone.items())
    print(
        f"study {study.path}: {report.total} runs · {report.done_before} already done · {report.ran} ran"
        f" · {report.failed} failed · {report.skipped_elsewhere} held by another sweep"
        f" · {report.batched} trained in stacked groups" + (f" ({alone})" if alone else "")
    )
    for version, n in report.older_numerics.items():
        print(
            f"  {n} of these runs were stored by numerics version {version}, whose results are not comparable "
            f"with this blackout's (version {NUMERICS_VERSION}): trained again"
        )
    for rid, msg in report.failures[:5]:
        print(f"  failed {rid}: {msg}")
    print(f"next: blackout analyze {study.path}  ·  blackout report {study.path}")


class Progress:
    """Sweep progress: a bar on a terminal; elsewhere (nohup, a log file, CI) one line per finished run,
    at most one every few seconds unless a run failed, with done/total, failures and an ETA."""

    EVERY = 5.0

    def __init__(self, verbose: bool = False):
        self.verbose, self.tty = verbose, sys.stderr.isatty() and not verbose
        self.bar, self.total, self.done, self.failed = None, 0, 0, 0
        self.start = self.last = time.monotonic()

    def plan(self, n_runs: int, n_todo: int, pool) -> None:
        self.total, self.start = n_todo, time.monotonic()
        where = (
            f"Ray at {pool.address}"
            if hasattr(pool, "address")
            else f"{pool.jobs} local process" + ("es" if pool.jobs != 1 else "")
        )
        print(f"sweep: {n_runs} runs, {n_todo} to do, on {where}", file=sys.stderr, flush=True)
        if self.tty and n_todo:
            from tqdm import tqdm

            self.bar = tqdm(total=n_todo, unit="run", desc="sweep", file=sys.stderr)

    def event(self, kind: str, rid: str, out: dict) -> None:
        self.done += 1
        self.failed += kind == "failed"
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed)
            return
        now = time.monotonic()
        if kind == "done" and self.done < self.total and now - self.last < self.EVERY and not self.verbose:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done)
        b = (out.get("result") or {}).get("blackout") or {}
        what = (
            (f"blackout {b.get('task')} ({b.get('cause')})" if b.get("task") else "no blackout")
            if kind == "done"
            else f"FAILED: {out.get('error')}"
        )
        print(
            f"[{self.done:>{len(str(self.total))}}/{self.total}] {rid} {what} · {self.failed} failed"
            f" · {_duration(elapsed)} elapsed · ETA {_duration(eta)}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _axis_arg(a: argparse.ArgumentParser) -> None:
    a.add_argument("study", type=path_arg)
    a.add_argument("--axis", choices=("width", "depth", "params"), default="width", help="capacity axis")


def args_analyze(a: argparse.ArgumentParser) -> None:
    _axis_arg(a)
    a.add_argument("--json", action="store_true", help="print the analysis as JSON")
    a.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples for the intervals")
    a.add_argument(
        "--methods",
        action="store_true",
        help="also rank the settings by tasks learned, accuracy after 10, 20, 30 (and 100) tasks, "
        "new-task accuracy and tasks retained",
    )


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..study.capacity import analyze
    from ..study.compare import checkpoints_for, method_table
    from .render import render_analysis, render_methods

    rs = _study(args).results()
    analysis = analyze(rs.runs, axis=args.axis, n_boot=args.bootstrap)
    for note in rs.notes():
        print(f"note: {note}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(analysis.to_dict()))
        return 0
    print(render_analysis(analysis))
    if args.methods:
        cps = checkpoints_for(rs.runs)
        print("\n" + render_methods(method_table(rs.runs, cps), cps))
    if rs.failed:
        print(f"\n{len(rs.failed)} failed runs are not in this analysis; `blackout report` lists them")
    return 0


def args_report(a: argparse.ArgumentParser) -> None:
    _axis_arg(a)
    a.add_argument("--out", type=path_arg, help="report file (default: STUDY/report.html)")
    a.add_argument("--svg", action="store_true", help="also save each figure as SVG beside its PNG (for print)")


def cmd_report(args: argparse.Namespace) -> int:
    path = _study(args).report(args.out, axis=args.axis, on_note=lambda n: print(f"note: {n}"), svg=args.svg)
    print(f"report: {path}")
    return 0


def args_export(e: argparse.ArgumentParser) -> None:
    e.add_argument("study", type=path_arg)
    e.add_argument(
        "--format",
        choices=("csv", "parquet", "jsonl"),
        default="csv",
        help="csv or parquet: one flat row per run; jsonl: every result whole, an archive that "
        "`blackout analyze` and `report` read like a study (gzipped for a .gz name)",
    )
    e.add_argument("--out", type=path_arg, help="output file (default: STUDY/results.FORMAT, results.jsonl.gz)")


def cmd_export(args: argparse.Namespace) -> int:
    print(f"exported: {_study(args).export(args.format, args.out)}")
    return 0


def args_demo(d: argparse.ArgumentParser) -> None:
    d.add_argument("--out", type=path_arg, default="studies/demo", help="study folder (default: studies/demo)")
    d.add_argument("--jobs", type=positive_int, help="worker processes (default: number of cores)")
    d.add_argument("--verbose", action="store_true")


def cmd_demo(args: argparse.Namespace) -> int:
    from ..api import Study
    from ..presets import DEMO
    from .render import render_analysis

    print(DEMO["about"])
    study = Study(args.out)
    progress = Progress(verbose=args.verbose)
    report = study.sweep("demo", jobs=args.jobs, on_event=progress.event, on_plan=progress.plan)
    progress.close()
    path = study.report()
    print(render_analysis(study.analyze()))
    print(
        f"\n{report.ran} runs ran ({report.batched} in stacked groups), {report.done_before} were already done,"
        f" {report.failed} failed"
    )
    print(f"report: {path}")
    return 1 if report.failed else 0


def args_methods(m: argparse.ArgumentParser) -> None:
    pass


def cmd_methods(args: argparse.Namespace) -> int:
    from ..experiment.methods import registry

    for name, cls in sorted(registry().items()):
        doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().splitlines()
        settings = ", ".join(cls.settings) or "no settings"
        print(f"{name:16} {doc[0] if doc else ''}\n{'':16} settings: {settings}")
    return 0
