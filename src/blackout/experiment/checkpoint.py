"""A group of runs saved at a task boundary and resumed there: a stopped long run loses at most the
task it was in, not the hours before it.

A checkpoint is the whole ``Experiment`` (networks, method state, a kept optimizer, every generator,
the records so far) written with ``torch.save``, which keeps tensors that share storage shared,
without its dataset, which is loaded again on resume. Resuming continues the same computation: a
resumed run's numbers equal an uninterrupted one's. The file is named by the group's run ids (a sweep
that cuts its groups differently, with another ``--jobs``, starts them afresh), replaced atomically,
written at most every ``EVERY`` seconds (a cheap task is not slowed by one write per task;
``$BLACKOUT_CHECKPOINT_SECONDS`` sets another interval) and deleted when the group finishes. A
checkpoint of another package or numerics version, or one that cannot be read, is ignored and
overwritten, so a run never mixes code versions. It is a pickle: resume only from checkpoints your own
sweeps wrote.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__, numerics
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import RunConfig
    from .train import Experiment

EVERY = 60.0
ENV = "BLACKOUT_CHECKPOINT_SECONDS"  # seconds between writes, instead of EVERY
FOLDER = "checkpoints"  # inside a study folder


def interval() -> float:
    """Seconds between checkpoint writes: ``$BLACKOUT_CHECKPOINT_SECONDS`` (0: after every task), else ``EVERY``."""
    raw = os.environ.get(ENV)
    if raw is None:
        return EVERY
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise ConfigError(f"{ENV}: expected the seconds between checkpoints (0 or more), got {raw!r}")
    return seconds


class Checkpoint:
    """The checkpoint file of one group of runs in ``folder``."""

    def __init__(self, folder: str | Path, configs: list[RunConfig], seconds: float | None = None):
        ids = [c.run_id for c in configs]
        self.file = Path(folder) / f"{hashlib.sha256(','.join(sorted(ids)).encode()).hexdigest()[:16]}.pt"
        self.header = {"version": __version__, "numerics": numerics.NUMERICS_VERSION, "run_ids": ids}
        self.every, self.last = interval() if seconds is None else seconds, time.perf_counter()

    def load(self) -> tuple[Experiment, float] | None:
        """The saved experiment (without its data) and the seconds it had run, or None if there is none to use."""
        import torch  # here: the sweep's driver names checkpoint folders without loading torch

        try:
            saved: dict[str, Any] = torch.load(self.file, weights_only=False)
        except FileNotFoundError:
            return None
        except Exception as e:  # damaged, or written by code whose classes have changed since
            print(f"blackout: {self.file}: not resumed, training from task 1 ({type(e).__name__})", file=sys.stderr)
            return None
        if saved.get("header") != self.header:
            return None
        return saved["experiment"], saved["elapsed"]

    def save(self, ex: Experiment) -> None:
        """Write ``ex`` if ``every`` seconds have passed since the last write; a failed write only warns."""
        if time.perf_counter() - self.last < self.every:
            return
        import torch

        tmp = self.file.with_suffix(".tmp")
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"header": self.header, "experiment": ex, "elapsed": time.perf_counter() - ex.start}, tmp)
            os.replace(tmp, self.file)
        except OSError as e:
            print(f"blackout: {self.file}: checkpoint not written ({e.strerror or e})", file=sys.stderr)
        self.last = time.perf_counter()

    def remove(self) -> None:
        self.file.unlink(missing_ok=True)
