"""Sweep specs: a base configuration and grids of values, expanded into run configs.

A sweep spec is a base configuration plus one or more grids of values per setting; the union of
the grids' cartesian products (in a fixed order, without repeats) is the list of runs. Every run's
identity is its config hash, so the store knows what is done and a re-run does only what is
missing or failed. Method settings given once (a flag with one value, a [base] key) apply to every
run whose method has that setting; a setting no run of the sweep has is an error.

Sweep file (TOML)::

    study = "capacity"          # optional; default: the study folder's name
    preset = "seed-blog"        # optional base preset
    [base]                      # settings for every run (flat names or [base.model]-style sections)
    tasks = 30
    [grid]                      # each setting a list of values; hidden takes lists of widths
    hidden = [[25], [50], [100]]
    lam = [5, 15]
    seed = [0, 1, 2]

Several ``[[grid]]`` tables instead of one ``[grid]`` give a union of grids (e.g. one lambda range
per method).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import FIXED, RunConfig, checked_setting, flat_settings, known, load_toml, printable, setting_of
from ..errors import ConfigError
from ..presets import run_preset

STORE_FILE = "results.sqlite"
MAX_RUNS = 100_000
"""Runs one sweep may hold: at a second per run (the smallest digits run) already more than a day on one
core. A grid is counted by multiplication before it is expanded, so a larger one is refused at once."""


@dataclass(frozen=True)
class SweepSpec:
    """``base`` settings, ``common`` method settings for every run that has them, and one or more grids."""

    base: RunConfig
    grids: tuple[dict[str, tuple[Any, ...]], ...] = ({},)
    name: str | None = None
    common: dict[str, Any] = field(default_factory=dict)

    def configs(self) -> list[RunConfig]:
        """Every grid's cartesian product over ``base``, in the order given, without repeats.

        Each combination is validated as a whole; a setting that no run has is an error.
        """
        self.check_size()
        out: dict[str, RunConfig] = {}
        used: set[str] = set()
        for grid in self.grids:
            axes = list(grid)
            for combo in itertools.product(*(grid[a] for a in axes)):
                values = {**self.common, **dict(zip(axes, combo))}
                where = (
                    "grid: " + ", ".join(f"{k}={_show(v)}" for k, v in zip(axes, combo)) + ": " if axes else "base: "
                )
                cfg = RunConfig.from_flat(values, self.base, where=where, strict=False)
                used |= {k for k in values if k in FIXED or k == "method" or k in dict(cfg.method.options)}
                out.setdefault(cfg.run_id, cfg)
        given = set(self.common) | {k for g in self.grids for k in g}
        unused = sorted(given - used)
        if unused:
            raise ConfigError(
                f"{unused[0]}: no run of this sweep has this setting (its methods: "
                f"{', '.join(sorted({c.method.method for c in out.values()}))})"
            )
        return list(out.values())

    def check_size(self, where: str = "") -> None:
        """Refuse a sweep of more than ``MAX_RUNS`` runs, counted by multiplying its axes' lengths."""
        sizes = [math.prod(len(v) for v in g.values()) for g in self.grids]
        if sum(sizes) > MAX_RUNS:
            big = max(self.grids, key=lambda g: math.prod(len(v) for v in g.values()))
            axes = " x ".join(f"{len(v):,} {k}" for k, v in big.items() if len(v) > 1)
            raise ConfigError(
                f"{where}grid: {sum(sizes):,} runs ({axes}{' and more grids' if len(sizes) > 1 else ''}), "
                f"expected at most {MAX_RUNS:,} in one sweep; split it into several studies"
            )

    def with_settings(
        self, values: dict[str, tuple[Any, ...]], where: str = "--", over_grids: bool = True
    ) -> SweepSpec:
        """One value sets the base (a method setting: every run that has it); several make an axis.

        The single values are applied together, so a valid combination (lwf with a multi-head split
        stream) is never judged half-applied. With ``over_grids`` (a command line's flags) a single
        value replaces the grids' own values of that setting; without it (a file's or a preset's
        [base]) it is the default that a grid's own value overrides.
        """
        one = {k: v[0] for k, v in values.items() if len(v) == 1}
        singles = {k: v for k, v in one.items() if k in FIXED or k == "method"}
        common = {k: v for k, v in one.items() if k not in singles}
        axes = {k: v for k, v in values.items() if len(v) > 1}
        base = RunConfig.from_flat(singles, self.base, where=where, strict=False) if singles else self.base
        replaced = set(singles) | set(common) if over_grids else set()
        grids = tuple({**{k: v for k, v in g.items() if k not in replaced}, **axes} for g in self.grids)
        return SweepSpec(base, grids, self.name, {**self.common, **common})

    def to_dict(self) -> dict[str, Any]:
        def plain(vs):
            return [list(v) if isinstance(v, tuple) else v for v in vs]

        return {
            "study": self.name,
            "base": self.base.to_dict(),
            "common": {k: list(v) if isinstance(v, tuple) else v for k, v in self.common.items()},
            "grids": [{k: plain(vs) for k, vs in g.items()} for g in self.grids],
        }


def _show(v: Any) -> str:
    return printable(",".join(map(str, v)) if isinstance(v, tuple) else str(v))


def parse_grids(raw: Any, where: Callable[[str], str]) -> tuple[dict[str, tuple[Any, ...]], ...]:
    """A grid table, or a list of them (TOML ``[[grid]]``), into axes of coerced values."""
    if raw is None:
        return ({},)
    tables = raw if isinstance(raw, list) else [raw]
    if not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(
            f"{where('grid')}grid: expected a table ([grid]) or tables ([[grid]]) of setting = [values], got {raw!r}"[
                :200
            ]
        )
    return tuple({k.replace("-", "_"): parse_axis(k, v, where(k)) for k, v in t.items()} for t in tables)


def parse_axis(name: str, raw: Any, where: str = "") -> tuple[Any, ...]:
    """Values of one grid axis, from a CLI string or a TOML list, each coerced to the setting's type.

    CLI strings: ``25,50,100``; ranges ``0-4`` for integers; tuple settings (hidden, channels)
    take ``;`` between values (``50,50;100,100``; ``8,16;`` is one value), else every comma item is
    one single-entry tuple.
    """
    key = name.replace("-", "_")
    if not known(key):
        raise ConfigError(f"{where}unknown setting {name!r} (see `blackout run --help`)")
    setting = setting_of(key)
    if isinstance(raw, str):
        if not raw.strip():
            raise ConfigError(f"{where}{name}: expected at least one value, got an empty string")
        if setting.kind is tuple:  # "8,16;" is the one value (8, 16)
            items: list[Any] = [v for v in raw.split(";") if v.strip()] if ";" in raw else raw.split(",")
        else:
            items = []
            for part in raw.split(","):
                m = re.fullmatch(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*", part)
                if m and setting.kind is int:
                    try:
                        lo, hi = int(m[1]), int(m[2])
                    except ValueError:  # past Python's 4300-digit limit
                        raise ConfigError(f"{where}{name}: expected an integer, got {part.strip()!r}") from None
                    if hi < lo:
                        raise ConfigError(f"{where}{name}: range {part.strip()!r} runs backwards; write {hi}-{lo}")
                    if hi - lo >= MAX_RUNS:
                        raise ConfigError(
                            f"{where}{name}: range {part.strip()!r} has {hi - lo + 1:,} values, "
                            f"expected at most {MAX_RUNS:,} (runs in one sweep)"
                        )
                    items += list(range(lo, hi + 1))
                elif not part.strip():
                    raise ConfigError(f"{where}{name}: empty value in {raw!r}")
                else:
                    items.append(part.strip())
    elif isinstance(raw, list):
        items = raw
    else:
        raise ConfigError(f"{where}{name}: expected a list of values, got {raw!r}")
    if not items:
        raise ConfigError(f"{where}{name}: expected at least one value")
    values = tuple(setting.coerce(v, f"{where}{name}") for v in items)
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}{name}: repeated value in {list(items)!r}")
    return values


def load_spec(path: str | Path, base: RunConfig | None = None) -> SweepSpec:
    """Read a sweep file; errors name the file, the line and the setting."""
    p = Path(path)
    shown = printable(str(p))
    doc = load_toml(p)
    text = p.read_text(encoding="utf-8")

    def where(key: str) -> str:
        k = re.escape(key)
        m = re.search(rf"^\s*(\[\[?\s*{k}\s*\]\]?|{k}\s*=)", text, re.M)
        return f"{shown}:{text[: m.start()].count(chr(10)) + 1}: " if m else f"{shown}: "

    unknown = set(doc) - {"study", "preset", "base", "grid"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"{where(key)}unknown section or key {key!r} (expected study, preset, [base], [grid] or [[grid]])"
        )
    if "study" in doc and (not isinstance(doc["study"], str) or not doc["study"].strip()):
        raise ConfigError(f"{where('study')}study: expected a name in quotes, got {doc['study']!r}")
    if "base" in doc and not isinstance(doc["base"], dict):
        raise ConfigError(f"{where('base')}base: expected a table [base], got {doc['base']!r}")
    cfg = base or RunConfig()
    if "preset" in doc:
        if not isinstance(doc["preset"], str):
            raise ConfigError(f"{where('preset')}preset: expected a name in quotes, got {doc['preset']!r}")
        cfg = RunConfig.from_flat(run_preset(doc["preset"]), cfg, where=where("preset"), strict=False)
    flat = dict(
        checked_setting(k, v, where(k)) for k, v in flat_settings(doc.get("base") or {}, f"{shown}: [base] ").items()
    )
    spec = SweepSpec(cfg, parse_grids(doc.get("grid"), where), doc.get("study"))
    spec = spec.with_settings({k: (v,) for k, v in flat.items()}, where=f"{shown}: [base] ", over_grids=False)
    spec.check_size(where("grid"))
    spec.configs()  # validate every combination before any run starts
    return spec
