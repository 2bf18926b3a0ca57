"""The golden runs: a few small fixed runs whose numbers must not change unless NUMERICS_VERSION does.

A run id promises the same numbers for the same configuration and numerics version, so a change to
the code that moves any of these numbers must raise ``blackout.numerics.NUMERICS_VERSION`` and
regenerate ``tests/golden/runs.json`` (``python tests/golden/regenerate.py``).

Tolerances: an accuracy is a count of right answers over the 360 test digits, so it moves in steps of
1/360; 1e-6 accepts only the same count. The training loss is a float32 mean whose rounding can
differ in the last bits between CPUs (other vector widths sum in another order) and grows a little
over a run's steps, so it is compared to a relative 1e-4, far below what a changed update moves.
On one machine both are reproduced exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from blackout.numerics import NUMERICS_VERSION
from tests.golden.regenerate import CASES, GOLDEN, measure

STORED = json.loads(GOLDEN.read_text())
RAISE = (
    "raise NUMERICS_VERSION in src/blackout/numerics.py and regenerate the golden runs "
    "(python tests/golden/regenerate.py)"
)


def test_the_golden_file_is_of_this_numerics_version_and_these_cases():
    assert STORED["numerics"] == NUMERICS_VERSION, (
        f"{GOLDEN} was written at numerics version {STORED['numerics']}: regenerate it (python tests/golden/regenerate.py)"
    )
    assert [r["settings"] for r in STORED["runs"]] == CASES, f"the cases changed: regenerate {GOLDEN}"


@pytest.mark.parametrize(
    "stored", STORED["runs"], ids=lambda r: f"{r['settings']['method']}-seed{r['settings']['seed']}"
)
def test_a_golden_run_gives_its_stored_numbers(stored):
    now = measure(stored["settings"])
    acc = np.array(now["acc"], dtype=float)
    want = np.array(stored["acc"], dtype=float)
    assert acc.shape == want.shape and np.array_equal(np.isnan(acc), np.isnan(want)), (
        f"{stored['settings']}: the accuracy matrix changed shape: {RAISE}"
    )
    np.testing.assert_allclose(
        acc, want, rtol=0, atol=1e-6, equal_nan=True, err_msg=f"{stored['settings']}: the accuracies changed: {RAISE}"
    )
    np.testing.assert_allclose(
        now["train_loss"],
        stored["train_loss"],
        rtol=1e-4,
        atol=0,
        err_msg=f"{stored['settings']}: the training losses changed: {RAISE}",
    )
