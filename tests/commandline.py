"""Command lines run in a fresh process, several to a process so that the imports are paid once.

Each command goes through ``blackout.cli.main`` exactly as ``python -m blackout`` sends it there; an
exception that escapes it comes back as a traceback, and a command that blocks (reading a FIFO)
times the whole batch out instead of hanging the test run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _env() -> dict[str, str]:
    """This environment, with PYTHONPATH made absolute so that a command run elsewhere (``cwd``) still
    imports the blackout under test."""
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


_DRIVER = """
import contextlib, io, json, sys, traceback
from blackout.cli import main
done = []
for argv in json.loads(sys.stdin.read()):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException:
            traceback.print_exc()
            code = None
    done.append([code, err.getvalue()])
print(json.dumps(done))
"""


def run_commands(*argvs: list, cwd: Path | None = None, timeout: float = 300) -> list[tuple[int | None, str]]:
    """(exit code, stderr) of each command line; the code is None where an exception escaped."""
    p = subprocess.run(
        [sys.executable, "-c", _DRIVER],
        input=json.dumps([[str(a) for a in argv] for argv in argvs]),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=_env(),
    )
    assert p.returncode == 0, p.stderr
    return [tuple(x) for x in json.loads(p.stdout.strip().splitlines()[-1])]


def refused(result: tuple[int | None, str], message: str) -> None:
    """Exit code 2 and exactly one line on stderr, "blackout: error: ...", containing ``message``."""
    code, err = result
    assert code == 2, err
    assert err.startswith("blackout: error:") and len(err.strip().splitlines()) == 1, err
    assert message in err, err


def blackout(*argv, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """One command line as a user types it: ``python -m blackout ...``."""
    return subprocess.run(
        [sys.executable, "-m", "blackout", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=_env(),
    )
