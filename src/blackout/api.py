"""The Python API: ``run`` one sequence of tasks, or open a ``Study`` to sweep, analyse and report.

The command line is a thin layer over these; a notebook uses them directly::

    import blackout
    r = blackout.run(dataset="digits", hidden=64, tasks=10, method="ewc", lam=15)
    r.acc, r.verdict, r.diagnostics_frame(), r.plot()

    study = blackout.Study("studies/lam")
    study.sweep(dataset="digits", hidden=[16, 64], lam=[5, 15], seed=[0, 1])
    study.frame(); study.analyze(); study.report()
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import RunConfig, checked_setting, flat_settings, load_toml, printable
from .errors import ConfigError, StoreError
from .experiment.result import Result
from .files import check_output, given
from .presets import run_preset, study_preset
from .study.spec import STORE_FILE, SweepSpec, load_spec, parse_axis, parse_grids


def config(preset: str | None = None, file: str | Path | None = None, **settings: Any) -> RunConfig:
    """A validated RunConfig from defaults < ``preset`` < a TOML ``file`` < keyword ``settings``."""
    merged: dict[str, Any] = {}
    base = RunConfig.from_flat(run_preset(preset), strict=False) if preset else RunConfig()
    if file is not None:
        where = f"{printable(str(file))}: "
        merged.update(checked_setting(k, v, where) for k, v in flat_settings(load_toml(file), where).items())
    merged.update(checked_setting(k, v) for k, v in settings.items())
    return RunConfig.from_flat(merged, base)


def run(
    cfg: RunConfig | str | None = None,
    *,
    data_dir: str | Path | None = None,
    on_task: Callable[[int, Any], None] | None = None,
    **settings: Any,
) -> Result:
    """Train one network through a sequence of tasks and return its Result.

    ``cfg``: a RunConfig, or a preset name ("seed-blog", "digits") that ``settings`` override, or
    None for the defaults overridden by ``settings`` (flat names, as on the command line).
    """
    from .experiment.data.sources import identified, load_dataset
    from .experiment.train import run as train_run

    if not isinstance(cfg, RunConfig):
        cfg = config(cfg, **settings)
    elif settings:
        cfg = RunConfig.from_flat(settings, cfg)
    data_dir = None if data_dir is None else str(data_dir)
    return train_run(identified(cfg, load_dataset(cfg.data.dataset, data_dir)), data_dir, on_task)


def plan(
    cfg: RunConfig | str | None = None,
    *,
    budget: int,
    knob: str = "lam",
    probe: int = 3,
    data_dir: str | Path | None = None,
    **settings: Any,
):
    """The largest ``knob`` ("lam" or "lr") that the blackout forecast says survives ``budget`` tasks, from a
    ``probe``-task run of the configuration (``cfg`` and ``settings`` as for ``run``); a ``Plan`` whose
    ``config`` is the planned run (``run(p.config)`` trains it)."""
    from .experiment.plan import plan as make_plan

    if not isinstance(cfg, RunConfig):
        cfg = config(cfg, **settings)
    elif settings:
        cfg = RunConfig.from_flat(settings, cfg)
    return make_plan(cfg, budget, knob, probe, lambda c, on_task: run(c, data_dir=data_dir, on_task=on_task))


def register_method(cls):
    """Make a ``Method`` subclass available by its ``name`` to ``run``, sweeps and reports (a decorator too)."""
    from .experiment.methods import register

    return register(cls)


class Study:
    """A study folder: ``results.sqlite`` (every run), ``sweep.json`` (the specs that made it), reports.

    ``path`` may also be a results archive (``blackout export --format jsonl``, e.g. the studies kept
    under docs/): it can be read, analysed and reported, not swept.
    """

    def __init__(self, path: str | Path):
        self.path = given(path, "Study")
        self.archive = self.path.is_file() and self.path.name.endswith((".jsonl", ".jsonl.gz"))
        self.store_path = self.path / STORE_FILE

    # -- sweeping ---------------------------------------------------------------------------
    def spec(
        self, preset: str | None = None, spec_file: str | Path | None = None, name: str | None = None, **settings: Any
    ) -> SweepSpec:
        """Preset < sweep file < ``settings``; a list (or a comma string) of values makes an axis."""
        spec = SweepSpec(RunConfig(), name=name)
        if preset:
            p = study_preset(preset)
            base = RunConfig.from_flat(run_preset(p["preset"]), strict=False) if p["preset"] else RunConfig()
            spec = SweepSpec(base, parse_grids(p["grid"], lambda key: f"preset {preset}: "), name or preset)
            spec = spec.with_settings(
                {k: (v,) for k, v in p["base"].items()}, where=f"preset {preset}: ", over_grids=False
            )
        if spec_file is not None:
            loaded = load_spec(spec_file, spec.base)
            spec = SweepSpec(
                loaded.base,
                loaded.grids if loaded.grids != ({},) else spec.grids,
                name or loaded.name or spec.name,
                {**spec.common, **loaded.common},
            )
        axes = {k.replace("-", "_"): parse_axis(k, _axis_text(v), "--") for k, v in settings.items()}
        return spec.with_settings(axes)

    def sweep(
        self,
        preset: str | None = None,
        spec_file: str | Path | None = None,
        *,
        jobs: int | None = None,
        ray: str | None = None,
        data_dir: str | Path | None = None,
        batched: bool = True,
        extend: bool = False,
        on_event: Callable[[str, str, dict], None] | None = None,
        on_plan=None,
        **settings: Any,
    ):
        """Run every combination not yet done into the study; returns the ``SweepReport``.

        A study holds one grid: runs beyond those it already has are refused unless ``extend``.
        ``on_plan(n_runs, n_todo, pool)`` is called once the work is known, before any run starts.
        """
        from .experiment import checkpoint
        from .experiment.data.sources import identified, load_dataset
        from .experiment.methods import registry
        from .study.pools import InlinePool, LocalPool, RayPool, run_sweep

        if self.archive:
            raise ConfigError(f"{self.path}: a results archive can be analysed and reported, not swept into")
        checkpoint.interval()  # a bad $BLACKOUT_CHECKPOINT_SECONDS is refused before any run starts
        spec = self.spec(preset, spec_file, **settings)
        configs = spec.configs()  # every combination validated before any run starts
        name = spec.name or self._recorded_name() or self.path.resolve().name
        in_main = any(registry()[c.method.method].__module__ == "__main__" for c in configs)
        pool = RayPool(ray, jobs) if ray else InlinePool() if in_main else LocalPool(jobs)
        data = {
            d: load_dataset(d, None if data_dir is None else str(data_dir))  # a missing data file fails now
            for d in sorted({c.data.dataset for c in configs})
        }
        configs = [identified(c, data[c.data.dataset]) for c in configs]  # run ids name the data too
        store = self._store(name, create=True)
        try:
            new = store.unknown([c.run_id for c in configs])
            older = _older_numerics(store, [c for c in configs if c.run_id in set(new)])
            held = sum(store.status_counts().values())
            if len(new) > sum(older.values()) and held and not extend:
                raise ConfigError(
                    f"{self.path}: this study already holds {held} runs of another grid; "
                    f"--extend adds these {len(new)} new runs to it, or choose a new study folder"
                )
            self._record_spec(spec, name, len(configs), len(new))
            report = run_sweep(
                configs, store, pool, None if data_dir is None else str(data_dir), on_event, batched, on_plan
            )
            report.older_numerics = older
            return report
        finally:
            store.close()

    def _recorded_name(self) -> str | None:
        meta = self._sweep_json()
        return meta.get("study") if meta else None

    def _sweep_json(self) -> dict | None:
        from .files import need_file

        path = self.path / "sweep.json"
        if self.archive or not need_file(path, "a sweep record (JSON)"):
            return None
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise StoreError(f"{path}: unreadable ({e})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("study", ""), str):
            raise StoreError(f"{path}: not a blackout sweep record (expected a study name in quotes)")
        return meta

    def _record_spec(self, spec: SweepSpec, name: str, n: int, n_new: int) -> None:
        """sweep.json keeps every spec that added runs, in order (written aside and renamed)."""
        meta = self._sweep_json() or {"study": name, "specs": []}
        meta.setdefault("specs", [])
        entry = {**spec.to_dict(), "runs": n}
        if n_new or not meta["specs"]:
            meta["specs"].append(entry)
        meta["study"] = name
        tmp = self.path / f".sweep.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self.path / "sweep.json")

    def _store(self, name: str | None, create: bool):
        from .files import need_folder
        from .study.store import Store

        if not create and not (
            need_folder(self.path, "a study folder or a results archive (.jsonl or .jsonl.gz)")
            and self.store_path.exists()
        ):
            raise ConfigError(
                f"{self.path}: no study here (missing {STORE_FILE}); run `blackout sweep {self.path}` first"
            )
        return Store(self.store_path, name, create=create, readonly=not create)

    # -- reading ----------------------------------------------------------------------------
    def results(self):
        """The study's ``ResultSet`` (finished runs and failures), read without writing a byte."""
        from .study.results import ResultSet

        if self.archive:
            return ResultSet.load(self.path)
        with self._store(None, create=False) as store:
            return ResultSet(store.results(), store.failures())

    def frame(self):
        """One row per finished run as a pandas DataFrame."""
        return self.results().frame()

    def analyze(self, axis: str = "width", bootstrap: int = 1000):
        """The capacity law per group, the blackout rules and the forecast against the runs: an
        ``Analysis`` read by attribute (``.groups``, ``.forecast``); ``.to_dict()`` is its JSON form."""
        from .study.capacity import analyze

        if bootstrap < 1:
            raise ConfigError(f"--bootstrap: expected at least 1 resample, got {bootstrap}")
        return analyze(self.results().runs, axis=axis, n_boot=bootstrap)

    def report(
        self,
        out: str | Path | None = None,
        axis: str = "width",
        on_note: Callable[[str], None] | None = None,
        svg: bool = False,
    ) -> Path:
        """Write the self-contained HTML report (default ``STUDY/report.html``) and, beside it, its
        figures as PNG, and as SVG too with ``svg`` (``STUDY/figures``, or ``NAME-figures`` next to a
        report written elsewhere); figures whose data did not change since the last report are reused.
        ``on_note`` receives each line the report says about the runs' numerics versions."""
        from .study.report import is_report, write_report

        default = (
            self.path.with_name(self.path.name.split(".")[0] + ".html") if self.archive else self.path / "report.html"
        )
        out = check_output(default if out is None else given(out, "out"), is_report, store=self.store_path)
        beside = not self.archive and out.resolve() == default.resolve()
        figures = self.path / "figures" if beside else out.with_name(f"{out.stem}-figures")
        rs = self.results()
        if on_note:
            for note in rs.notes():
                on_note(note)
        meta = self._sweep_json()
        return write_report(
            out,
            rs,
            axis=axis,
            title=f"blackout study: {(meta or {}).get('study') or self.path.name}",
            study=meta,
            figures=figures,
            svg=svg,
        )

    def export(self, fmt: str = "csv", out: str | Path | None = None) -> Path:
        from .study.store import EXPORTS

        if fmt not in ("csv", "parquet", "jsonl"):
            raise ConfigError(f"--format: expected csv, parquet or jsonl, got {fmt!r}")
        if self.archive:
            raise ConfigError(f"{self.path}: already an export; `blackout report` and `analyze` read it")
        out = check_output(
            given(out, "out") if out is not None else self.path / f"results.{fmt}{'.gz' if fmt == 'jsonl' else ''}",
            EXPORTS[fmt],
            store=self.store_path,
        )
        with self._store(None, create=False) as store:
            return store.export(out, fmt)


def _older_numerics(store, configs: list[RunConfig]) -> dict[int, int]:
    """Of ``configs`` (runs the store has no row for), how many it holds done only under an older
    numerics version (another run id), by that version: a sweep trains them again."""
    if not configs:
        return {}
    key = functools.partial(json.dumps, sort_keys=True)
    stored: dict[str, int] = {}
    for cfg, version in store.done_numerics():
        stored[key(cfg)] = max(version, stored.get(key(cfg), version))
    found = [stored[k] for k in map(key, (c.to_dict() for c in configs)) if k in stored]
    return dict(sorted(Counter(found).items()))


def _axis_text(v: Any) -> Any:
    """A keyword value as an axis: a list (or range) is several values, a string is parsed as on the
    command line ("0-4", "25,50"), anything else is one value. hidden=[[50, 50]] is one two-layer net."""
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, range)):
        return list(v)
    return [v]
