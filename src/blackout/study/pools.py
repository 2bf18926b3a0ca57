"""Executing a sweep: runs grouped into stacked units, handed to a local process pool or Ray.

Executors only schedule: each unit of configs goes to ``execute`` in a worker, which trains it
with ``run_group`` (one stacked model) and returns plain JSON; the driver alone writes the store.
Units are claimed just before submission, so several sweep processes can share a store, and
submitted longest first, so the last unit to finish is a short one. A worker exits when its
parent dies, so a killed sweep leaves no process behind.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import IO, Any, cast

from ..config import RunConfig, n_params_estimate
from ..errors import ConfigError
from ..experiment import checkpoint
from .store import Store
from .worker import BOOT, execute, in_group

MAX_MEMBERS = 8
RAY_CONNECT_TIMEOUT = 10.0
"""Seconds a ``--ray host:port`` has to accept a connection before the sweep is refused: Ray's own
client goes on retrying an address where nothing listens for many minutes."""


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


def user_method_modules() -> list[str]:
    """Modules outside the package that registered methods: a worker imports them to know the methods."""
    from ..experiment.methods import registry

    return sorted({cls.__module__ for cls in registry().values() if not cls.__module__.startswith("blackout.")})


class LocalPool:
    """Worker processes on this machine, by default one per core (a run trains with the threads its
    config names, 1 by default); each trains one unit at a time.

    A worker is a fresh interpreter whose main module is blackout's own (``worker.main``), fed units
    over a pipe. It is deliberately not a ``multiprocessing`` child: spawn and forkserver re-run the
    caller's main module in every child (as ``__mp_main__``), so a script that calls ``sweep`` without
    ``if __name__ == "__main__":`` would start its sweep again inside each worker. Here the caller's
    main module is never imported, so a plain script, ``python -c`` and a notebook behave alike
    (methods defined in ``__main__`` itself train in process: ``InlinePool``).

    A worker that dies (the kernel's out-of-memory killer sends SIGKILL) fails only the runs it
    held, with the signal in their error; the next unit gets a new worker.
    """

    def __init__(self, jobs: int | None = None):
        cores = os.cpu_count() or 1
        if jobs is not None and not 1 <= jobs <= 4 * cores:  # each worker holds its own data and network
            raise ConfigError(
                f"--jobs: expected 1 to {4 * cores} worker processes (4 x this machine's {cores} cores), got {jobs}"
            )
        self.jobs = jobs or cores
        self._idle: list[subprocess.Popen] = []
        self._busy: dict[Future, subprocess.Popen] = {}
        self._readers: list[threading.Thread] = []

    def __enter__(self) -> LocalPool:
        path = [p or os.getcwd() for p in sys.path]  # "" (the caller's folder) as an absolute path
        self._argv = [
            sys.executable,
            "-c",
            BOOT,
            json.dumps(path),
            str(os.getpid()),
            *(m for m in user_method_modules() if m != "__main__"),
        ]
        return self

    def submit(self, configs: list[dict], data_dir: str | None, checkpoints: str | None = None) -> Future:
        while self._idle and self._idle[-1].poll() is not None:  # died while idle: nothing of ours lost
            _close_pipes(self._idle.pop())
        proc = (
            self._idle.pop()
            if self._idle
            else subprocess.Popen(self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        )
        fut: Future = Future()
        self._busy[fut] = proc
        try:
            pickle.dump((configs, data_dir, checkpoints), _stdin(proc))
            _stdin(proc).flush()
        except OSError:  # it died just now; the reader below reports how
            pass
        reader = threading.Thread(target=self._read, args=(proc, fut, len(configs)), daemon=True)
        reader.start()
        self._readers = [t for t in self._readers if t.is_alive()] + [reader]
        return fut

    @staticmethod
    def _read(proc: subprocess.Popen, fut: Future, n: int) -> None:
        try:
            fut.set_result(pickle.load(_stdout(proc)))
        except Exception:  # the worker is gone (EOF) or said something unreadable: it failed these runs
            fut.set_result([{"error": died(proc) + in_group(n), "seconds": None}] * n)

    def wait(self, pending: set) -> tuple[set, set]:
        return wait(pending, return_when=FIRST_COMPLETED)

    def value(self, done: Future) -> list[dict]:
        proc = self._busy.pop(done)
        if proc.poll() is None:
            self._idle.append(proc)
        else:  # it died: the next unit gets a new worker
            _close_pipes(proc)
        return done.result()

    def __exit__(self, *exc: object) -> None:
        workers = self._idle + list(self._busy.values())
        for proc in workers:
            if exc[0] is not None:  # do not wait for runs whose rows go back to pending anyway
                proc.kill()
            else:
                _stdin(proc).close()  # the worker's end of input: it exits
        for proc in workers:
            proc.wait()
        for reader in self._readers:
            reader.join()
        for proc in workers:
            _stdout(proc).close()
        self._idle, self._busy, self._readers = [], {}, []


def _stdin(proc: subprocess.Popen) -> IO[bytes]:
    """A worker's input pipe (every worker starts with both pipes)."""
    return cast(IO[bytes], proc.stdin)


def _stdout(proc: subprocess.Popen) -> IO[bytes]:
    """A worker's output pipe."""
    return cast(IO[bytes], proc.stdout)


def _close_pipes(proc: subprocess.Popen) -> None:
    for pipe in (_stdin(proc), _stdout(proc)):
        try:
            pipe.close()
        except OSError:  # unsent input to a dead worker
            pass


def died(proc: subprocess.Popen) -> str:
    """Why a worker ended while it held runs, from its exit status."""
    try:
        code = proc.wait(5)
    except subprocess.TimeoutExpired:  # it closed its output but lives on: stop it
        proc.kill()
        return "the worker process stopped answering and was stopped"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "a signal"
        oom = (
            ", most likely by the out-of-memory killer (the machine ran short of memory)"
            if -code == signal.SIGKILL
            else ""
        )
        return f"the worker process was killed by {name} (signal {-code}){oom}"
    return f"the worker process exited with code {code} before it finished"


class InlinePool:
    """Runs in this process, one unit at a time: for methods defined in ``__main__`` (a notebook or a
    script), which no worker process can import."""

    jobs = 1

    def __enter__(self) -> InlinePool:
        return self

    def submit(self, configs: list[dict], data_dir: str | None, checkpoints: str | None = None) -> Future:
        fut: Future = Future()
        fut.set_result(execute(configs, data_dir, checkpoints))
        return fut

    def wait(self, pending: set) -> tuple[set, set]:
        return wait(pending, return_when=FIRST_COMPLETED)

    @staticmethod
    def value(done: Future) -> list[dict]:
        return done.result()

    def __exit__(self, *exc: object) -> None:
        pass


class RayPool:
    """The same scheduling on a Ray cluster: ``address`` "auto" (a running cluster) or host:port."""

    def __init__(self, address: str, jobs: int | None = None):
        if jobs is not None and jobs < 1:
            raise ConfigError(f"--jobs: expected at least 1, got {jobs}")
        try:
            import ray
        except ModuleNotFoundError:
            raise ConfigError('ray: not installed; pip install "blackout[ray]"') from None
        _check_reachable(address, ray)
        self.ray, self.address = ray, address
        self.jobs = jobs

    def __enter__(self) -> RayPool:
        try:
            self.ray.init(
                address=self.address,
                ignore_reinit_error=True,
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
            )
        except (ConnectionError, RuntimeError) as e:
            raise ConfigError(f"--ray {self.address}: {_refusal(e)}") from None
        self.jobs = self.jobs or max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        self._remote = self.ray.remote(num_cpus=1)(execute)
        return self

    def submit(self, configs: list[dict], data_dir: str | None, checkpoints: str | None = None):
        # no checkpoints: a node of the cluster may not see the driver's study folder
        return self._remote.remote(configs, data_dir)

    def wait(self, pending: set) -> tuple[set, set]:
        done, rest = self.ray.wait(list(pending), num_returns=1)
        return set(done), set(rest)

    def value(self, done) -> list[dict]:
        return self.ray.get(done)

    def __exit__(self, *exc: object) -> None:
        self.ray.shutdown()


def _refusal(e: BaseException) -> str:
    """Why Ray could not join a cluster, in one line: its own errors chain several tracebacks."""
    chain = [e]
    while chain[-1].__cause__ is not None and len(chain) < 8:
        chain.append(chain[-1].__cause__)
    if any("Authentication" in type(x).__name__ or "InvalidAuthToken" in str(x) for x in chain):
        return (
            "the cluster requires token authentication; set RAY_AUTH_MODE=token and give its token "
            "(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
        )
    return f"could not join the Ray cluster: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"


def _check_reachable(address: str, ray) -> None:
    """Refuse a host:port where nothing accepts a connection within ``RAY_CONNECT_TIMEOUT`` ("auto": Ray
    looks for its local cluster itself and says when there is none)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return
    if host in ("localhost", "127.0.0.1", "::1"):  # as Ray does: it connects to this node's address instead
        host = ray.util.get_node_ip_address()
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT).close()
    except (OSError, OverflowError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise ConfigError(
            f"--ray {address}: cannot connect ({why}, waited at most {RAY_CONNECT_TIMEOUT:g} s); "
            "start a cluster with `ray start --head` or give its address"
        ) from None


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


def run_sweep(
    configs: list[RunConfig],
    store: Store,
    pool,
    data_dir: str | None = None,
    on_event: Callable[[str, str, dict], None] | None = None,
    batched: bool = True,
    on_plan: Callable[[int, int, Any], None] | None = None,
) -> SweepReport:
    """Run every config the store does not have done; record each result or failure as it arrives.

    ``on_plan(n_runs, n_todo, pool)`` is called once the work is known (a killed sweep's runs counted
    among those to do), before any run starts. On an interrupt, the runs in flight go back to pending
    before the exception propagates.
    """
    by_id = {c.run_id: c for c in configs}
    store.add((rid, c.to_dict()) for rid, c in by_id.items())
    store.reclaim_stale()
    todo = store.todo(by_id)
    elsewhere = set(store.running(by_id))  # another sweep process holds them now
    if on_plan:
        on_plan(len(by_id), len(todo), pool)
    report = SweepReport(total=len(by_id), done_before=len(by_id) - len(todo) - len(elsewhere))
    with pool:
        while todo:
            elsewhere |= _run_units([by_id[r] for r in todo], store, pool, data_dir, on_event, batched, report)
            # a run that another sweep held and has handed back since (that sweep was interrupted)
            # is left to no one: run it here, or the study would end with it pending
            todo = store.todo([r for r in by_id if r in elsewhere])
            elsewhere -= set(todo)
    report.skipped_elsewhere = len(elsewhere)
    return report


def _run_units(configs, store: Store, pool, data_dir, on_event, batched: bool, report: SweepReport) -> set[str]:
    """Train ``configs`` in stacked units on ``pool``, recording each result or failure as it arrives.
    Returns the ids that another sweep process held or had finished, so that this one did not claim them.

    On an interrupt, the runs in flight go back to pending before the exception propagates.
    """
    plan, alone = units(configs, pool.jobs, batched)
    for why, n in alone.items():
        report.alone[why] = report.alone.get(why, 0) + n
    queue = iter(plan)
    inflight: dict[Any, list[str]] = {}
    skipped: set[str] = set()
    try:
        _fill(queue, inflight, pool, store, data_dir, report, skipped)
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
            _fill(queue, inflight, pool, store, data_dir, report, skipped)
    except BaseException:
        for rids in inflight.values():
            for rid in rids:
                store.release(rid)
        raise
    return skipped


def _fill(
    queue: Iterator[list[RunConfig]], inflight: dict, pool, store: Store, data_dir, report: SweepReport, skipped: set
) -> None:
    while len(inflight) < pool.jobs:
        unit = next(queue, None)
        if unit is None:
            return
        mine: list[RunConfig] = []
        try:
            for c in unit:
                # noted as mine before the claim, so an interrupt at any point hands it back:
                # releasing a run this process does not hold changes nothing
                mine.append(c)
                if not store.claim(c.run_id):
                    mine.pop()
            if mine:
                saves = str(store.path.parent / checkpoint.FOLDER)
                inflight[pool.submit([c.to_dict() for c in mine], data_dir, saves)] = [c.run_id for c in mine]
        except BaseException:  # claimed but not yet in flight: hand them back too
            for c in mine:
                store.release(c.run_id)
            raise
        # another sweep process holds or finished the rest
        skipped.update({c.run_id for c in unit} - {c.run_id for c in mine})
        report.batched += len(mine) if len(mine) > 1 else 0
