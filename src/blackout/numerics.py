"""The numerics version: what a run id promises besides its configuration.

A run id hashes a run's configuration and ``NUMERICS_VERSION``, not the package version, so a
release that changes no number (a typo, a faster report, a new command) leaves every stored run
valid and a resumed sweep has nothing to train.

Raise ``NUMERICS_VERSION`` (by one) in the change that can alter a run's numbers for a
configuration that already existed: training, data order, initialisation, the Fisher, a method's
update, evaluation, the verdict or a diagnostic. Then regenerate the golden runs
(``python tests/golden/regenerate.py``); ``tests/test_golden.py`` fails until both are done. A new
setting whose default keeps the old behaviour needs no raise: it changes the configuration instead.

A result records the version that computed it (``numerics``; absent, as in results written before
numerics versions existed, it reads as 0). Runs of different numerics versions are never mixed:
a study's analysis and report keep the newest version among its runs and say how many runs of
older versions they left out, and a sweep trains again the runs it holds only from older versions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

NUMERICS_VERSION = 3
"""Raised by one with every change that can move a run's numbers; run ids hash it."""


def numerics_of(result: dict[str, Any]) -> int:
    """The numerics version a result (its JSON form) was computed with; 0 when it predates them."""
    v = result.get("numerics", 0)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def newest(versions: Iterable[int]) -> tuple[int | None, dict[int, int]]:
    """(the newest version among ``versions``, {older version: how many}); (None, {}) for none."""
    counts = Counter(versions)
    if not counts:
        return None, {}
    top = max(counts)
    return top, {v: n for v, n in sorted(counts.items()) if v != top}


def describe(kept: int, version: int | None, left_out: dict[int, int]) -> list[str]:
    """Lines that say which numerics versions a set of runs holds, when that is not plain current runs."""
    lines = []
    if version is not None and version != NUMERICS_VERSION:
        lines.append(
            f"{_runs(kept)} from numerics version {version} (this blackout computes version "
            f"{NUMERICS_VERSION}, so a sweep of the same grid trains them again)"
        )
    for v, n in left_out.items():
        lines.append(
            f"{_runs(n)} from numerics version {v} left out: not comparable with the {_runs(kept)} of version {version}"
        )
    return lines


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"
