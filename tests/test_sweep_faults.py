"""Sweeps that cannot run are refused at once, and a fault in one worker fails only its runs.

Each case runs the command as a fresh process, as a user meets it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from blackout.study.spec import MAX_RUNS

TOML_GRID = "[base]\ntasks = 2\n[grid]\nlr = [{lr}]\nseed = [{seed}]\n"


def _blackout(*argv, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blackout", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout)


def _one_line_error(p: subprocess.CompletedProcess, message: str) -> None:
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("blackout: error:") and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert message in p.stderr, p.stderr


def _big_toml(path, n: int) -> None:
    path.write_text(TOML_GRID.format(lr=", ".join(str(0.001 * (i + 1)) for i in range(n)),
                                     seed=", ".join(map(str, range(n)))))


def test_a_grid_past_the_limit_is_refused_before_it_is_expanded(tmp_path):
    study = tmp_path / "s"
    _one_line_error(_blackout("sweep", study, "--dataset", "digits", "--seeds", "0-999999", "--lam", "1,2,3", "--check"),
                    "range '0-999999' has 1,000,000 values, expected at most 100,000")
    _one_line_error(_blackout("sweep", study, "--dataset", "digits", "--seeds", "0-99999", "--lam", "1,2,3", "--check"),
                    f"grid: 300,000 runs (3 lam x 100,000 seed), expected at most {MAX_RUNS:,} in one sweep")
    _big_toml(tmp_path / "big.toml", 2000)
    _one_line_error(_blackout("sweep", study, "--spec", tmp_path / "big.toml"),
                    "big.toml:3: grid: 4,000,000 runs (2,000 lr x 2,000 seed), expected at most 100,000")
    assert not study.exists()


def test_counting_a_huge_grid_takes_under_a_second(tmp_path):
    """Timed in a fresh process, past its imports (torch alone takes seconds on a busy machine), in CPU time."""
    _big_toml(tmp_path / "big.toml", 2000)
    code = f"""
import json, time
from blackout.api import Study
from blackout.errors import ConfigError
Study({str(tmp_path / "s")!r}).spec(dataset="digits", seed="0-1").configs()  # lazy imports done before timing
times = []
for kw in [dict(spec_file={str(tmp_path / "big.toml")!r}), dict(dataset="digits", seed="0-99999", lam="1,2,3")]:
    start = time.process_time()
    try:
        Study({str(tmp_path / "s")!r}).spec(**kw).configs()
    except ConfigError:
        times.append(time.process_time() - start)
print(json.dumps(times))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    times = json.loads(p.stdout)
    assert len(times) == 2 and max(times) < 1.0, times
