"""The command line: a thin layer over ``blackout.api``, and the only code that prints or exits.

Every user error (a ``BlackoutError``) becomes one line on stderr and exit code 2. Only the
parser of the command being run is built, so ``blackout --help`` imports neither torch nor the
study libraries.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import BlackoutError, ConfigError

COMMANDS = {
    "run": "train one network through a sequence of tasks",
    "plan": "the largest lambda (or lr) the blackout forecast says survives a task budget",
    "sweep": "run a grid of settings into a study folder (resumable)",
    "analyze": "fit the capacity law of a study",
    "report": "write the study's self-contained HTML report",
    "export": "export a study's runs as CSV or Parquet",
    "demo": "a small capacity study on the embedded digits, with its report",
    "methods": "list the continual-learning methods",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 (not a usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse quotes argv as given: a line break in it must not break the one-line error
        raise ConfigError(f"{self.prog}: {' '.join(message.split())}")


def parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with full arguments only for the command named in ``argv`` (every command's if None)."""
    p = Parser(prog="blackout", description="How many tasks a network learns before blackout, and why.")
    p.add_argument("--version", action="version", version=f"blackout {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    wanted = "*" if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name, helptext in COMMANDS.items():
        c = sub.add_parser(name, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        if wanted in ("*", name):
            from . import commands

            getattr(commands, f"args_{name}")(c)
    return p


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (a scheduler, `kill`) stops as Ctrl-C does: in-flight sweep runs are handed back.
    signal.signal(signal.SIGTERM, _interrupt)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser(argv).parse_args(argv)
        from . import commands

        return int(getattr(commands, f"cmd_{args.command}")(args) or 0)
    except BlackoutError as e:
        print(f"blackout: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("blackout: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`blackout analyze STUDY | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
