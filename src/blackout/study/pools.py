"""Executing a sweep: runs grouped into stacked units, handed to a local process pool or Ray.

Executors only schedule: each unit of configs goes to ``execute`` in a worker, which trains it
with ``run_group`` (one stacked model) and returns plain JSON; the driver alone writes the store.
Units are claimed just before submission, so several sweep processes can share a store, and
submitted longest first, so the last unit to finish is a short one. A worker exits when its
parent dies, so a killed sweep leaves no process behind.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, n_params_estimate
from ..errors import ConfigError
from .store import Store

MAX_MEMBERS = 8


def execute(configs: list[dict[str, Any]], data_dir: str | None) -> list[dict[str, Any]]:
    """Train ``configs`` in this process as one group (with the threads their config names); never raises.

    Returns one {"result": ..., "seconds": ...} or {"error": ..., "seconds": ...} per config.
    """
    from ..experiment.train import run_group

    start = time.perf_counter()
    try:
        cfgs = [RunConfig.from_dict(c) for c in configs]
        results = run_group(cfgs, data_dir=data_dir)
    except Exception as e:  # a failed group is recorded per run and the sweep goes on
        last = traceback.extract_tb(e.__traceback__)[-1]
        where = f" (in a group of {len(configs)})" if len(configs) > 1 else ""
        msg = f"{type(e).__name__}: {e} ({Path(last.filename).name}:{last.lineno}){where}"
        return [{"error": msg, "seconds": time.perf_counter() - start}] * len(configs)
    share = (time.perf_counter() - start) / len(configs)
    return [{"result": r.to_dict(), "seconds": share} for r in results]


def cost(cfg: RunConfig) -> float:
    """Relative training work of a run: steps x parameters (the run may stop earlier)."""
    steps = cfg.train.iterations if cfg.train.epochs == 0 else cfg.train.epochs * 1000
    return cfg.data.tasks * steps * n_params_estimate(cfg)


def units(configs: list[RunConfig], jobs: int, batched: bool = True) -> tuple[list[list[RunConfig]], dict[str, int]]:
    """Runs grouped into stacked units (largest work first), and why the others train alone.

    Groups are cut into chunks of at most ``MAX_MEMBERS``, and the largest chunks halved until there
    are at least two units per job, so every job stays busy to the end.
    """
    from ..experiment.train import alone_reason, group_key

    alone: dict[str, int] = {}
    out: list[list[RunConfig]] = []
    groups: dict[Any, list[RunConfig]] = {}
    for c in configs:
        key = group_key(c) if batched else None
        if key is None:
            reason = (alone_reason(c) or "") if batched else "--no-batch"
            alone[reason] = alone.get(reason, 0) + 1
            out.append([c])
        else:
            groups.setdefault(key, []).append(c)
    for members in groups.values():
        out += [members[i : i + MAX_MEMBERS] for i in range(0, len(members), MAX_MEMBERS)]
    while len(out) < 2 * jobs and any(len(u) > 1 for u in out):
        big = max(range(len(out)), key=lambda i: (len(out[i]) > 1, sum(cost(c) for c in out[i])))
        u = out.pop(big)
        out += [u[: (len(u) + 1) // 2], u[(len(u) + 1) // 2 :]]
    out.sort(key=lambda u: -sum(cost(c) for c in u))
    return out, alone


def _worker_start(parent: int, modules: list[str]) -> None:
    """Worker initialiser: import the modules of the user's registered methods, and exit as soon as
    the sweep process that started this worker is gone."""
    import importlib

    for name in modules:
        importlib.import_module(name)
    _watch_parent(parent)


def user_method_modules() -> list[str]:
    """Modules outside the package that registered methods: a worker imports them to know the methods."""
    from ..experiment.methods import registry

    return sorted({cls.__module__ for cls in registry().values() if not cls.__module__.startswith("blackout.")})


def _watch_parent(parent: int) -> None:
    """Exit as soon as the process that started this one is gone."""
    try:  # Linux: the kernel kills this process when its parent dies
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # everywhere else, and in case the parent died before prctl: poll
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class LocalPool:
    """A process pool, by default one worker per core (a run trains with the threads its config names, 1 by default)."""

    def __init__(self, jobs: int | None = None):
        if jobs is not None and jobs < 1:
            raise ConfigError(f"--jobs: expected at least 1, got {jobs}")
        self.jobs = jobs or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalPool:
        import multiprocessing as mp

        modules = [m for m in user_method_modules() if m != "__main__"]
        self._pool = ProcessPoolExecutor(self.jobs, mp_context=mp.get_context("spawn"),
                                         initializer=_worker_start, initargs=(os.getpid(), modules))
        return self

    def submit(self, configs: list[dict], data_dir: str | None) -> Future:
        return self._executor().submit(execute, configs, data_dir)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            raise RuntimeError("LocalPool used outside its `with` block")
        return self._pool

    def wait(self, pending: set) -> tuple[set, set]:
        return wait(pending, return_when=FIRST_COMPLETED)

    @staticmethod
    def value(done: Future) -> list[dict]:
        return done.result()

    def __exit__(self, *exc: object) -> None:
        interrupted = exc[0] is not None
        workers = list((getattr(self._pool, "_processes", None) or {}).values())  # shutdown() forgets them
        self._executor().shutdown(wait=not interrupted, cancel_futures=True)
        if interrupted:  # do not wait for runs whose rows go back to pending anyway
            for proc in workers:
                proc.kill()


class InlinePool:
    """Runs in this process, one unit at a time: for methods defined in ``__main__`` (a notebook or a
    script), which no worker process can import."""

    jobs = 1

    def __enter__(self) -> InlinePool:
        return self

    def submit(self, configs: list[dict], data_dir: str | None) -> Future:
        fut: Future = Future()
        fut.set_result(execute(configs, data_dir))
        return fut

    def wait(self, pending: set) -> tuple[set, set]:
        return wait(pending, return_when=FIRST_COMPLETED)

    value = staticmethod(LocalPool.value)

    def __exit__(self, *exc: object) -> None:
        pass


class RayPool:
    """The same scheduling on a Ray cluster: ``address`` "auto" (a running cluster) or host:port."""

    def __init__(self, address: str, jobs: int | None = None):
        try:
            import ray
        except ModuleNotFoundError:
            raise ConfigError('ray: not installed; pip install "blackout[ray]"') from None
        if jobs is not None and jobs < 1:
            raise ConfigError(f"--jobs: expected at least 1, got {jobs}")
        self.ray, self.address = ray, address
        self.jobs = jobs

    def __enter__(self) -> RayPool:
        self.ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False,
                      runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}})
        self.jobs = self.jobs or max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        self._remote = self.ray.remote(num_cpus=1)(execute)
        return self

    def submit(self, configs: list[dict], data_dir: str | None):
        return self._remote.remote(configs, data_dir)

    def wait(self, pending: set) -> tuple[set, set]:
        done, rest = self.ray.wait(list(pending), num_returns=1)
        return set(done), set(rest)

    def value(self, done) -> list[dict]:
        return self.ray.get(done)

    def __exit__(self, *exc: object) -> None:
        self.ray.shutdown()


@dataclass
class SweepReport:
    total: int
    done_before: int
    ran: int = 0
    failed: int = 0
    skipped_elsewhere: int = 0
    batched: int = 0  # runs trained inside stacked groups of two or more
    alone: dict[str, int] = field(default_factory=dict)  # why runs trained alone, and how many
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: runs the store held done only from an older numerics version, so trained again: {version: runs}
    older_numerics: dict[int, int] = field(default_factory=dict)


def run_sweep(configs: list[RunConfig], store: Store, pool, data_dir: str | None = None,
              on_event: Callable[[str, str, dict], None] | None = None, batched: bool = True) -> SweepReport:
    """Run every config the store does not have done; record each result or failure as it arrives.

    On an interrupt, the runs in flight go back to pending before the exception propagates.
    """
    by_id = {c.run_id: c for c in configs}
    store.add((rid, c.to_dict()) for rid, c in by_id.items())
    store.reclaim_stale()
    todo = store.todo(by_id)
    report = SweepReport(total=len(by_id), done_before=len(by_id) - len(todo))
    with pool:
        plan, report.alone = units([by_id[r] for r in todo], pool.jobs, batched)
        queue = iter(plan)
        inflight: dict[Any, list[str]] = {}
        try:
            _fill(queue, inflight, pool, store, data_dir, report)
            while inflight:
                done, _ = pool.wait(set(inflight))
                for fut in done:
                    # the unit leaves ``inflight`` only once all its runs are recorded: an interrupt
                    # in between hands back what is still running (``release`` leaves done rows alone)
                    for rid, out in zip(inflight[fut], pool.value(fut)):
                        if "result" in out:
                            store.finish(rid, out["result"], out["seconds"])
                            report.ran += 1
                        else:
                            store.fail(rid, out["error"], out["seconds"])
                            report.failed += 1
                            report.failures.append((rid, out["error"]))
                        if on_event:
                            on_event("done" if "result" in out else "failed", rid, out)
                    del inflight[fut]
                _fill(queue, inflight, pool, store, data_dir, report)
        except BaseException:
            for rids in inflight.values():
                for rid in rids:
                    store.release(rid)
            raise
    return report


def _fill(queue: Iterator[list[RunConfig]], inflight: dict, pool, store: Store, data_dir, report: SweepReport) -> None:
    while len(inflight) < pool.jobs:
        unit = next(queue, None)
        if unit is None:
            return
        mine: list[RunConfig] = []
        try:
            for c in unit:
                if store.claim(c.run_id):
                    mine.append(c)
            if mine:
                inflight[pool.submit([c.to_dict() for c in mine], data_dir)] = [c.run_id for c in mine]
        except BaseException:  # claimed but not yet in flight: hand them back too
            for c in mine:
                store.release(c.run_id)
            raise
        report.skipped_elsewhere += len(unit) - len(mine)  # another sweep process holds or finished them
        report.batched += len(mine) if len(mine) > 1 else 0
