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

import pytest

from blackout.study.pools import RAY_CONNECT_TIMEOUT
from blackout.study.spec import MAX_RUNS

TOML_GRID = "[base]\ntasks = 2\n[grid]\nlr = [{lr}]\nseed = [{seed}]\n"


def _blackout(*argv, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "blackout", *map(str, argv)], capture_output=True, text=True, timeout=timeout
    )


def _one_line_error(p: subprocess.CompletedProcess, message: str) -> None:
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("blackout: error:") and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert message in p.stderr, p.stderr


def _big_toml(path, n: int) -> None:
    path.write_text(
        TOML_GRID.format(lr=", ".join(str(0.001 * (i + 1)) for i in range(n)), seed=", ".join(map(str, range(n))))
    )


def test_a_grid_past_the_limit_is_refused_before_it_is_expanded(tmp_path):
    study = tmp_path / "s"
    _one_line_error(
        _blackout("sweep", study, "--dataset", "digits", "--seeds", "0-999999", "--lam", "1,2,3", "--check"),
        "range '0-999999' has 1,000,000 values, expected at most 100,000",
    )
    _one_line_error(
        _blackout("sweep", study, "--dataset", "digits", "--seeds", "0-99999", "--lam", "1,2,3", "--check"),
        f"grid: 300,000 runs (3 lam x 100,000 seed), expected at most {MAX_RUNS:,} in one sweep",
    )
    _big_toml(tmp_path / "big.toml", 2000)
    _one_line_error(
        _blackout("sweep", study, "--spec", tmp_path / "big.toml"),
        "big.toml:3: grid: 4,000,000 runs (2,000 lr x 2,000 seed), expected at most 100,000",
    )
    assert not study.exists()


def test_an_unreachable_ray_address_is_refused_within_its_limit(tmp_path):
    """Ray's client retries such an address for many minutes; the sweep gives up within RAY_CONNECT_TIMEOUT,
    timed in a fresh process past its imports (which take tens of seconds on a busy machine)."""
    pytest.importorskip("ray")
    study = tmp_path / "s"
    p = _blackout("sweep", study, "--ray", "127.0.0.1:1", "--dataset", "digits", "--tasks", "2", timeout=300)
    _one_line_error(p, "--ray 127.0.0.1:1: cannot connect (Connection refused, waited at most 10 s)")
    assert not study.exists()
    assert _seconds_to_refuse(f"Study({str(study)!r}).sweep(ray='127.0.0.1:1', dataset='digits')") < RAY_CONNECT_TIMEOUT


def _seconds_to_refuse(call: str, clock: str = "monotonic") -> float:
    """Seconds (wall or CPU) that ``call`` takes to raise ConfigError in a fresh process, its imports done first."""
    code = f"""
import time
from blackout.api import Study
from blackout.errors import ConfigError
Study("unused").spec(dataset="digits", seed="0-1").configs()  # lazy imports done before timing
start = time.{clock}()
try:
    {call}
except ConfigError:
    print(time.{clock}() - start)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip(), p.stderr
    return float(p.stdout)


def test_counting_a_huge_grid_takes_under_a_second(tmp_path):
    """In CPU time, so that a busy machine cannot make it fail or pass."""
    _big_toml(tmp_path / "big.toml", 2000)
    for call in [
        f"Study('s').spec(spec_file={str(tmp_path / 'big.toml')!r}).configs()",
        "Study('s').spec(dataset='digits', seed='0-99999', lam='1,2,3').configs()",
    ]:
        assert _seconds_to_refuse(call, clock="process_time") < 1.0, call


STALL = '''
"""A method that stalls at its second task, once per sweep: a run in flight for the test to kill."""
import os, time
from blackout import Method


class Stall(Method):
    name = "stall"

    def begin_task(self, net, task, data):
        mark = os.environ["STALL_MARK"]
        if self.tasks_seen == 1 and not os.path.exists(mark + ".taken"):
            os.close(os.open(mark + ".taken", os.O_CREAT | os.O_EXCL))
            with open(mark + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(mark + ".tmp", mark)
            time.sleep(600)
'''


def test_a_worker_killed_from_outside_fails_only_its_run(tmp_path):
    """SIGKILL to a worker mid-run (as the out-of-memory killer does): that run fails naming the signal,
    the other runs finish, and the sweep ends with its "some runs failed" code."""
    plugin = tmp_path / "plugin"
    (plugin / "stall_method-0.dist-info").mkdir(parents=True)
    (plugin / "stall_method.py").write_text(STALL)
    (plugin / "stall_method-0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: stall-method\nVersion: 0\n"
    )
    (plugin / "stall_method-0.dist-info" / "entry_points.txt").write_text(
        "[blackout.methods]\nstall = stall_method:Stall\n"
    )
    mark = tmp_path / "stalled"
    env = {
        **os.environ,
        "STALL_MARK": str(mark),
        "PYTHONPATH": os.pathsep.join(p for p in (str(plugin), os.environ.get("PYTHONPATH")) if p),
    }
    study = tmp_path / "study"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "blackout",
            "sweep",
            str(study),
            "--dataset",
            "digits",
            "--tasks",
            "3",
            "--hidden",
            "16",
            "--iterations",
            "100",
            "--method",
            "sgd,stall",
            "--seeds",
            "0-1",
            "--jobs",
            "2",
            "--no-batch",
            "--verbose",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 180
    while not mark.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert mark.exists(), proc.communicate()[1]
    os.kill(int(mark.read_text()), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    with sqlite3.connect(study / "results.sqlite") as c:
        rows = c.execute("SELECT status, error, config FROM runs").fetchall()
    failed = [(e, json.loads(cfg)["method"]["method"]) for s, e, cfg in rows if s == "failed"]
    assert len(rows) == 4 and sum(s == "done" for s, _, _ in rows) == 3, rows
    assert failed == [
        (
            "the worker process was killed by SIGKILL (signal 9), most likely by the out-of-memory "
            "killer (the machine ran short of memory)",
            "stall",
        )
    ]
    assert "3 ran · 1 failed" in out and "killed by SIGKILL" in out
