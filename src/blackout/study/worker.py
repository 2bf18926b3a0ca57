"""What runs inside a sweep worker: ``execute`` one unit of configs, and the local worker's main loop.

A local worker is a fresh interpreter started as ``python -c BOOT`` (see ``pools.LocalPool``) whose
main is ``main`` below, never the caller's main module: it takes the caller's ``sys.path``, imports
blackout and the modules that registered methods, then reads units from stdin and writes their
outcomes to stdout, one pickle each, until stdin closes.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

# started by LocalPool as [python, -c, BOOT, SYS_PATH_JSON, PARENT_PID, MODULE...]
BOOT = "import json, sys; sys.path[:] = json.loads(sys.argv[1]); from blackout.study.worker import main; main()"


def execute(
    configs: list[dict[str, Any]], data_dir: str | None, checkpoints: str | None = None
) -> list[dict[str, Any]]:
    """Train ``configs`` in this process as one group (with the threads their config names); never raises.

    Returns one {"result": ..., "seconds": ...} or {"error": ..., "seconds": ...} per config. With a
    ``checkpoints`` folder the group resumes from its last checkpoint there (``experiment/checkpoint.py``).
    """
    from ..config import RunConfig
    from ..experiment.train import run_group

    start = time.perf_counter()
    try:
        cfgs = [RunConfig.from_dict(c) for c in configs]
        results = run_group(cfgs, data_dir=data_dir, checkpoints=checkpoints)
    except Exception as e:  # a failed group is recorded per run and the sweep goes on
        last = traceback.extract_tb(e.__traceback__)[-1]
        msg = f"{type(e).__name__}: {e} ({Path(last.filename).name}:{last.lineno}){in_group(len(configs))}"
        return [{"error": msg, "seconds": time.perf_counter() - start}] * len(configs)
    share = (time.perf_counter() - start) / len(configs)
    return [{"result": r.to_dict(), "seconds": share} for r in results]


def in_group(n: int) -> str:
    return f" (in a group of {n})" if n > 1 else ""


def watch_parent(parent: int) -> None:
    """Exit as soon as the process that started this one is gone."""
    try:  # Linux: the kernel kills this process when its parent dies
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # everywhere else, and in case the parent died before prctl: poll
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    """The local worker loop (``sys.argv``: the caller's sys.path as JSON, the parent's pid, modules to import)."""
    import importlib

    # Ctrl-C on a terminal reaches the whole process group: the sweep, not its workers, decides
    # what an interrupt means (it hands the runs in flight back and stops its workers itself)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(int(sys.argv[2]))
    # the protocol owns the original stdout; anything the training code prints goes to stderr
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    for name in sys.argv[3:]:
        importlib.import_module(name)
    while True:
        try:
            unit = pickle.load(sys.stdin.buffer)  # (configs, data_dir, checkpoints)
        except EOFError:  # the sweep is done with this worker
            return
        pickle.dump(execute(*unit), channel)
        channel.flush()
