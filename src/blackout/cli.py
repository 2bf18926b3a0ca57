"""The command line: the only module that prints or exits.

Every user error (a ``BlackoutError``) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .config import FIELD_INFO, FIELD_SECTION, FIELD_TYPE, SECTIONS, RunConfig, load_toml
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
            default = info.default if info.default is not info.default_factory else None
            if FIELD_TYPE[name] is bool and not as_lists:
                group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                   help=f"{helptext} (default: {default})")
            else:
                shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
                extra = " (comma-separated list to sweep)" if as_lists else ""
                group.add_argument(flag, dest=name, metavar=_metavar(name), default=None,
                                   help=f"{helptext}{extra} (default: {shown})")


def _metavar(name: str) -> str:
    choices = FIELD_INFO[name].metadata["choices"]
    return "{" + ",".join(choices) + "}" if choices else name.upper()


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k in FIELD_SECTION and v is not None}


def build_config(args: argparse.Namespace) -> RunConfig:
    """defaults < preset < --config file < flags."""
    cfg = RunConfig()
    if args.preset:
        cfg = RunConfig.from_flat(run_preset(args.preset), cfg, where=f"preset {args.preset}: ")
    if args.config:
        cfg = RunConfig.from_dict(load_toml(args.config), cfg, where=f"{args.config}: ")
    return RunConfig.from_flat(given_settings(args), cfg, where="--")


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
    for add in _EXTRA_COMMANDS:
        add(sub)
    return p


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS

    for name, cls in sorted(METHODS.items()):
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        print(f"{name:12} {doc}")
    return 0


_EXTRA_COMMANDS: list = []


def main(argv: Sequence[str] | None = None) -> int:
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
