"""A run's results folder: machine-readable files a researcher can load without blackout.

    result.json       the whole Result (``blackout.experiment.result`` documents its fields)
    accuracy.csv      the accuracy matrix: one row per task trained, one column per task, empty = not evaluated
    diagnostics.csv   one row per task (``DIAGNOSTICS``); a per-layer list becomes one column per layer

Every file is written aside and renamed into place, so an interrupted write never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from ..errors import ConfigError
from .result import DIAGNOSTICS, Result

FILES = ("result.json", "accuracy.csv", "diagnostics.csv")


def check_out_dir(out: Path) -> Path:
    """Refuse a folder that cannot hold the results before any training starts; parents are created."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, expected a folder for result.json, accuracy.csv and diagnostics.csv")
    for name in FILES:
        if (out / name).is_dir():
            raise ConfigError(f"--out {out}: {name} there is a folder, expected a file or nothing")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out}: folder is not writable")
    return out


def write_run_folder(result: Result, out: Path) -> Path:
    check_out_dir(out)
    d = result.to_dict()
    _atomic_write(out / "result.json", json.dumps(d, indent=1))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["after_task"] + [f"task_{j + 1}" for j in range(result.acc.shape[1])])
    for i, row in enumerate(d["acc"]):
        w.writerow([i + 1] + ["" if v is None else f"{v:.6f}" for v in row])
    _atomic_write(out / "accuracy.csv", buf.getvalue())
    _atomic_write(out / "diagnostics.csv", diagnostics_csv(d["diagnostics"]))
    return out


def diagnostics_csv(rows: list[dict]) -> str:
    """Known fields in ``DIAGNOSTICS`` order, then any others; lists spread over numbered columns."""
    names = [k for k in DIAGNOSTICS if any(k in r for r in rows)]
    names += sorted({k for r in rows for k in r} - set(names))
    widths = {k: max((len(r[k]) for r in rows if isinstance(r.get(k), list)), default=0) for k in names}
    header: list[str] = []
    for k in names:
        header += [f"{k}_{i + 1}" for i in range(widths[k])] if widths[k] else [k]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        cells = []
        for k in names:
            v = r.get(k)
            if widths[k]:
                v = list(v) if isinstance(v, list) else []
                cells += ["" if x is None else x for x in v] + [""] * (widths[k] - len(v))
            else:
                cells.append("" if v is None else v)
        w.writerow(cells)
    return buf.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
