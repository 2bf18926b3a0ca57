"""Sweeps: a grid of run settings expanded into configs, each handed to the same ``run(config)``.

A sweep spec is a base configuration plus a grid of values per setting; its cartesian product
(in a fixed order) is the list of runs. Every run's identity is its config hash, so the store
knows what is done and a re-run does only what is missing or failed. Executors only schedule:
the local process pool and Ray differ in where ``execute`` is called, not in what it does.

Sweep file (TOML)::

    study = "capacity"          # optional; default: the study folder's name
    preset = "seed-blog"        # optional base preset
    [base]                      # settings for every run (flat names or [base.model]-style sections)
    tasks = 30
    [grid]                      # each setting a list of values; hidden takes lists of widths
    hidden = [[25], [50], [100]]
    lam = [5, 15]
    seed = [0, 1, 2]

Several ``[[grid]]`` tables instead of one ``[grid]`` give a union of grids (e.g. one λ range
per method).
"""

from __future__ import annotations

import itertools
import os
import re
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .config import FIELD_SECTION, FIELD_TYPE, RunConfig, checked_setting, coerce, load_toml
from .errors import ConfigError
from .presets import run_preset
from .store import Store

STORE_FILE = "results.sqlite"


@dataclass(frozen=True)
class SweepSpec:
    """``base`` settings and one or more grids; the runs are the union of each grid's product."""

    base: RunConfig
    grids: tuple[dict[str, tuple[Any, ...]], ...] = ({},)
    name: str | None = None

    def configs(self) -> list[RunConfig]:
        """Every grid's cartesian product over ``base``, in the order given, without repeats."""
        out: dict[str, RunConfig] = {}
        for grid in self.grids:
            axes = list(grid)
            for combo in itertools.product(*(grid[a] for a in axes)):
                cfg = RunConfig.from_flat(dict(zip(axes, combo)), self.base, where="grid: ")
                out.setdefault(cfg.run_id, cfg)
        return list(out.values())

    def with_settings(self, values: dict[str, tuple[Any, ...]], where: str = "--") -> SweepSpec:
        """One value sets the base for every run; several make (or replace) an axis of every grid.

        The single values are applied together, so a valid combination (lwf with a multi-head split
        stream) is never judged half-applied.
        """
        singles = {k: v[0] for k, v in values.items() if len(v) == 1}
        axes = {k: v for k, v in values.items() if len(v) > 1}
        base = RunConfig.from_flat(singles, self.base, where=where) if singles else self.base
        grids = tuple({**{k: v for k, v in g.items() if k not in singles}, **axes} for g in self.grids)
        return SweepSpec(base, grids, self.name)

    def to_dict(self) -> dict[str, Any]:
        plain = lambda vs: [list(v) if isinstance(v, tuple) else v for v in vs]
        return {"study": self.name, "base": self.base.to_dict(),
                "grids": [{k: plain(vs) for k, vs in g.items()} for g in self.grids]}


def parse_grids(raw: Any, where: Callable[[str], str]) -> tuple[dict[str, tuple[Any, ...]], ...]:
    """A grid table, or a list of them (TOML ``[[grid]]``), into axes of coerced values."""
    tables = raw if isinstance(raw, list) else [raw or {}]
    return tuple({k.replace("-", "_"): parse_axis(k, v, where(k)) for k, v in t.items()} for t in tables)


def parse_axis(name: str, raw: Any, where: str = "") -> tuple[Any, ...]:
    """Values of one grid axis, from a CLI string or a TOML list, each coerced to the field's type.

    CLI strings: ``25,50,100``; ranges ``0-4`` for integers; tuple settings (hidden, channels)
    take ``;`` between values (``50,50;100,100``; ``8,16;`` is one value), else every comma item is
    one single-entry tuple.
    """
    key = name.replace("-", "_")
    if key not in FIELD_SECTION:
        raise ConfigError(f"{where}unknown setting {name!r} (see `blackout run --help`)")
    is_tuple = getattr(FIELD_TYPE[key], "__origin__", None) is tuple
    if isinstance(raw, str):
        if is_tuple:  # "8,16;" is the one value (8, 16)
            items: list[Any] = [v for v in raw.split(";") if v.strip()] if ";" in raw else raw.split(",")
        else:
            items = []
            for part in raw.split(","):
                m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", part)
                if m and FIELD_TYPE[key] is int:
                    items += list(range(int(m[1]), int(m[2]) + 1))
                else:
                    items.append(part.strip())
    elif isinstance(raw, list):
        items = raw
    else:
        raise ConfigError(f"{where}{name}: expected a list of values, got {raw!r}")
    if not items:
        raise ConfigError(f"{where}{name}: expected at least one value")
    values = tuple(coerce(key, v, where) for v in items)
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}{name}: repeated value in {list(items)!r}")
    return values


def load_spec(path: str | Path, base: RunConfig | None = None) -> SweepSpec:
    """Read a sweep file; errors name the file, the line and the setting."""
    p = Path(path)
    doc = load_toml(p)
    text = p.read_text()

    def where(key: str) -> str:
        k = re.escape(key)
        m = re.search(rf"^\s*(\[\s*{k}\s*\]|{k}\s*=)", text, re.M)
        return f"{p}:{text[: m.start()].count(chr(10)) + 1}: " if m else f"{p}: "

    unknown = set(doc) - {"study", "preset", "base", "grid"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"{where(key)}unknown section or key {key!r} (expected study, preset, [base], [grid] or [[grid]])")
    cfg = base or RunConfig()
    if "preset" in doc:
        cfg = RunConfig.from_flat(run_preset(doc["preset"]), cfg, where=where("preset"))
    flat = dict(checked_setting(k, v, where(k)) for key, value in (doc.get("base") or {}).items()
                for k, v in (value if isinstance(value, dict) else {key: value}).items())
    cfg = RunConfig.from_flat(flat, cfg, where=f"{p}: [base] ")  # together: validity is of the whole
    spec = SweepSpec(cfg, parse_grids(doc.get("grid"), where), doc.get("study"))
    spec.configs()  # validate every combination before any run starts
    return spec


# -- execution -------------------------------------------------------------------------------

def execute(configs: list[dict[str, Any]], data_dir: str | None, threads: int) -> list[dict[str, Any]]:
    """Run configs in this process (batched when there are several); never raises.

    Returns one {"result": ..., "seconds": ...} or {"error": ..., "seconds": ...} per config.
    """
    import torch

    torch.set_num_threads(threads)
    cfgs = [RunConfig.from_dict(c) for c in configs]
    if len(cfgs) > 1:
        from .ensemble import run_ensemble

        start = time.perf_counter()
        try:
            results = run_ensemble(cfgs, data_dir=data_dir)
            share = (time.perf_counter() - start) / len(cfgs)
            return [{"result": r.to_dict(), "seconds": share} for r in results]
        except Exception:  # run them one by one, so one bad config fails alone
            pass
    return [_execute_one(c, data_dir) for c in cfgs]


def _execute_one(cfg: RunConfig, data_dir: str | None) -> dict[str, Any]:
    from .train import run

    start = time.perf_counter()
    try:
        return {"result": run(cfg, data_dir=data_dir).to_dict(), "seconds": time.perf_counter() - start}
    except Exception as e:  # a failed run is recorded and the sweep goes on
        last = traceback.extract_tb(e.__traceback__)[-1]
        return {"error": f"{type(e).__name__}: {e} ({Path(last.filename).name}:{last.lineno})",
                "seconds": time.perf_counter() - start}


def units(configs: list[RunConfig], jobs: int, batched: bool = True) -> list[list[RunConfig]]:
    """Group runs that can train as one batched ensemble; chunks small enough to keep every job busy."""
    from .ensemble import MAX_MEMBERS, ensemble_key

    if not batched:
        return [[c] for c in configs]
    groups: dict[Any, list[RunConfig]] = {}
    out = []
    for c in configs:
        key = ensemble_key(c)
        if key is None:
            out.append([c])
        else:
            groups.setdefault(key, []).append(c)
    for members in groups.values():
        size = max(1, min(MAX_MEMBERS, -(-len(members) // jobs)))
        out += [members[i : i + size] for i in range(0, len(members), size)]
    return out


class LocalPool:
    """A process pool; each worker gets cores // jobs torch threads so the machine is not oversubscribed."""

    def __init__(self, jobs: int | None = None):
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self.threads = max(1, (os.cpu_count() or 1) // self.jobs)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalPool:
        import multiprocessing as mp

        self._pool = ProcessPoolExecutor(self.jobs, mp_context=mp.get_context("spawn"))
        return self

    def submit(self, configs: list[dict], data_dir: str | None) -> Future:
        return self._pool.submit(execute, configs, data_dir, self.threads)

    def wait(self, pending: set) -> tuple[set, set]:
        return wait(pending, return_when=FIRST_COMPLETED)

    @staticmethod
    def value(done: Future) -> dict:
        return done.result()

    def __exit__(self, *exc: object) -> None:
        interrupted = exc[0] is not None
        workers = list((getattr(self._pool, "_processes", None) or {}).values())  # shutdown() forgets them
        self._pool.shutdown(wait=not interrupted, cancel_futures=True)
        if interrupted:  # do not wait for runs whose rows go back to pending anyway
            for proc in workers:
                proc.kill()


class RayPool:
    """The same scheduling on a Ray cluster: ``address`` "auto" (a running cluster) or host:port."""

    def __init__(self, address: str, jobs: int | None = None):
        try:
            import ray
        except ModuleNotFoundError:
            raise ConfigError('ray: not installed; pip install "blackout[ray]"') from None
        self.ray, self.address = ray, address
        self.jobs = jobs

    def __enter__(self) -> RayPool:
        self.ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False,
                      runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}})
        self.jobs = self.jobs or max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        self._remote = self.ray.remote(num_cpus=1)(execute)
        return self

    def submit(self, configs: list[dict], data_dir: str | None):
        return self._remote.remote(configs, data_dir, 1)

    def wait(self, pending: set) -> tuple[set, set]:
        done, rest = self.ray.wait(list(pending), num_returns=1)
        return set(done), set(rest)

    def value(self, done) -> dict:
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
    batched: int = 0  # runs trained inside batched ensembles
    failures: list[tuple[str, str]] = field(default_factory=list)


def run_sweep(configs: list[RunConfig], store: Store, pool, data_dir: str | None = None,
              on_event: Callable[[str, str, dict], None] | None = None, batched: bool = True) -> SweepReport:
    """Run every config the store does not have done; record each result or failure as it arrives.

    Runs are claimed just before submission, so several sweep processes can share a store. Runs
    that can share a batched model (``ensemble.py``) go to one worker together unless ``batched``
    is false. On an interrupt, the runs in flight go back to pending before the exception propagates.
    """
    by_id = {c.run_id: c for c in configs}
    store.add((rid, c.to_dict()) for rid, c in by_id.items())
    store.reclaim_stale()
    todo = store.todo(by_id)
    report = SweepReport(total=len(by_id), done_before=len(by_id) - len(todo))
    with pool:
        queue = iter(units([by_id[r] for r in todo], pool.jobs, batched))
        inflight: dict[Any, list[str]] = {}
        try:
            _fill(queue, inflight, pool, store, data_dir, report)
            while inflight:
                done, _ = pool.wait(set(inflight))
                for fut in done:
                    for rid, out in zip(inflight.pop(fut), pool.value(fut)):
                        if "result" in out:
                            store.finish(rid, out["result"], out["seconds"])
                            report.ran += 1
                        else:
                            store.fail(rid, out["error"], out["seconds"])
                            report.failed += 1
                            report.failures.append((rid, out["error"]))
                        if on_event:
                            on_event("done" if "result" in out else "failed", rid, out)
                _fill(queue, inflight, pool, store, data_dir, report)
        except BaseException:
            for rids in inflight.values():
                for rid in rids:
                    store.release(rid)
            raise
    return report


def _fill(queue: Iterable[list[RunConfig]], inflight: dict, pool, store: Store, data_dir, report: SweepReport) -> None:
    while len(inflight) < pool.jobs:
        unit = next(queue, None)
        if unit is None:
            return
        mine = [c for c in unit if store.claim(c.run_id)]
        report.skipped_elsewhere += len(unit) - len(mine)  # another sweep process holds or finished them
        if mine:
            report.batched += len(mine) if len(mine) > 1 else 0
            inflight[pool.submit([c.to_dict() for c in mine], data_dir)] = [c.run_id for c in mine]
