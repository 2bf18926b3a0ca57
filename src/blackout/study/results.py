"""A study's results as one value: the runs that finished and the runs that failed.

``ResultSet`` is what the study level passes around (analysis, ranking, plots, report, export),
and what ``blackout.Study(path).results()`` gives a notebook.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..experiment.result import Result
from ..numerics import describe, newest
from .capacity import flat_config
from .compare import setting_labels


@dataclass
class ResultSet:
    """Finished runs of one numerics version, and failures.

    Runs computed by different numerics versions are not comparable, so only those of the newest
    version among the given runs are kept; ``left_out`` counts the others by version, and ``notes``
    says so (and whether the kept runs are of an older version than this blackout computes).
    """

    runs: list[Result]
    failed: list[dict[str, Any]] = field(default_factory=list)  # {"run_id", "config", "error", "attempts"}
    numerics: int | None = field(init=False, default=None)  # the kept runs' numerics version
    left_out: dict[int, int] = field(init=False, default_factory=dict)  # {older numerics version: runs}

    def __post_init__(self) -> None:
        self.numerics, self.left_out = newest(r.numerics for r in self.runs)
        if self.left_out:
            self.runs = [r for r in self.runs if r.numerics == self.numerics]

    def notes(self) -> list[str]:
        """Lines saying which numerics versions these runs are of, when that is not just the current one."""
        return describe(len(self.runs), self.numerics, self.left_out)

    @classmethod
    def load(cls, path: str | Path) -> ResultSet:
        """Results from an archive written by ``blackout export --format jsonl`` (.jsonl or .jsonl.gz)."""
        import gzip
        import json

        from ..errors import StoreError
        from ..files import need_file

        path = Path(path)
        if not need_file(path, "a results archive (.jsonl or .jsonl.gz)"):
            raise StoreError(f"{path}: no results archive here")
        try:
            raw = path.read_bytes()
            text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as e:
            raise StoreError(f"{path}: cannot read results archive ({e})") from None
        runs = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                runs.append(Result.from_dict(json.loads(line)))
            except (ValueError, TypeError, KeyError, RecursionError) as e:
                raise StoreError(f"{path}:{n}: not a blackout result ({e})") from None
        return cls(runs)

    def __iter__(self) -> Iterator[Result]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def frame(self):
        """One row per finished run: its settings, verdict and headline metrics (a pandas DataFrame)."""
        import pandas as pd

        labels = setting_labels(self.runs)
        rows = []
        for r in self.runs:
            row = {"run_id": r.run_id, "setting": labels[r.run_id], **flat_config(r)}
            row["hidden"] = ",".join(map(str, row["hidden"]))
            row["channels"] = ",".join(map(str, row.get("channels", [])))
            row.update(
                blackout_task=r.verdict.task,
                cause=r.verdict.cause,
                learned=r.verdict.learned,
                retained=r.verdict.retained,
                tasks_run=r.tasks_run,
                avg_acc=r.metrics.get("avg_acc"),
                forgetting=r.metrics.get("forgetting"),
                n_params=r.n_params,
                version=r.version,
                numerics=r.numerics,
            )
            rows.append(row)
        return pd.DataFrame(rows)
