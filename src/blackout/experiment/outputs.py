"""A run's results folder: machine-readable files a researcher can load without blackout.

    result.json       the whole Result (``blackout.experiment.result`` documents its fields)
    accuracy.csv      the accuracy matrix: one row per task trained, one column per task, empty = not evaluated
    diagnostics.csv   one row per task (``DIAGNOSTICS``); a per-layer list becomes one column per layer

Every file is written aside and renamed into place, so an interrupted write never leaves half a file,
and replaces only a file of the same name that blackout wrote (``OURS`` recognises each by its content).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

from ..errors import ConfigError
from ..files import atomic_write, check_output, first_line, need_folder
from .result import DIAGNOSTICS, Result


def _is_result_json(path: Path) -> bool:
    """A whole Result, as ``result.json`` holds it."""
    Result.from_dict(json.loads(path.read_bytes()))
    return True


def _is_accuracy_csv(path: Path) -> bool:
    names = first_line(path).rstrip("\r\n").split(",")
    return names[0] == "after_task" and names[1:] == [f"task_{j + 1}" for j in range(len(names) - 1)] != []


def _is_diagnostics_csv(path: Path) -> bool:
    """``diagnostics_csv``'s header: "task", then known fields in ``DIAGNOSTICS`` order, then others sorted."""
    names = [
        re.sub(r"_\d+$", "", n) if re.sub(r"_\d+$", "", n) in DIAGNOSTICS else n
        for n in first_line(path).rstrip("\r\n").split(",")
    ]
    names = list(dict.fromkeys(names))
    known = [n for n in names if n in DIAGNOSTICS]
    rest = names[len(known) :]
    return names[:1] == ["task"] and known == [n for n in DIAGNOSTICS if n in known] and rest == sorted(rest)


OURS = {"result.json": _is_result_json, "accuracy.csv": _is_accuracy_csv, "diagnostics.csv": _is_diagnostics_csv}


def check_out_dir(out: Path) -> Path:
    """Refuse a folder that cannot hold the results before any training starts; parents are created."""
    if not need_folder(out, "a folder for result.json, accuracy.csv and diagnostics.csv", f"--out {out}"):
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    for name, is_ours in OURS.items():
        check_output(out / name, is_ours, label=str(out / name))
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out}: folder is not writable")
    return out


def write_run_folder(result: Result, out: Path) -> Path:
    check_out_dir(out)
    d = result.to_dict()
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["after_task"] + [f"task_{j + 1}" for j in range(result.acc.shape[1])])
    for i, row in enumerate(d["acc"]):
        w.writerow([i + 1] + ["" if v is None else f"{v:.6f}" for v in row])
    atomic_write(out / "result.json", json.dumps(d, indent=1))
    atomic_write(out / "accuracy.csv", buf.getvalue())
    atomic_write(out / "diagnostics.csv", diagnostics_csv(d["diagnostics"]))
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
