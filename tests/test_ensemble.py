"""Batched ensembles reproduce run(config) for every member, and the sweep groups runs correctly."""

import math

import numpy as np
import pytest

from blackout.ensemble import ensemble_key, run_ensemble
from blackout.sweep import units
from blackout.train import run
from tests.conftest import small


def test_members_match_single_runs_exactly():
    configs = [
        small(tasks=4, seed=0, lam=15.0),
        small(tasks=4, seed=1, lam=15.0),
        small(tasks=4, seed=2, lam=60.0, lr=0.05),
        small(tasks=4, seed=4, lam=0.0),  # no penalty: plain SGD inside the same stacked model
        small(tasks=4, seed=3, lam=1e4, lr=0.5),  # diverges at task 2 while the others go on
    ]
    together = run_ensemble(configs)
    for cfg, got in zip(configs, together):
        alone = run(cfg)
        assert got.run_id == alone.run_id
        assert np.array_equal(got.acc, alone.acc, equal_nan=True)
        assert got.blackout == alone.blackout
        for a, b in zip(got.diagnostics, alone.diagnostics):
            if math.isnan(b["train_loss"]):
                assert math.isnan(a["train_loss"])
            else:
                assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
            assert a["stability"] == pytest.approx(b["stability"], rel=1e-6)
            assert a["fisher_max"] == b["fisher_max"] or a["fisher_max"] == pytest.approx(b["fisher_max"], rel=1e-5)
    assert together[4].blackout["cause"] == "diverged" and together[0].tasks_run == 4


def test_only_compatible_runs_share_a_model():
    base = small()
    assert ensemble_key(base) == ensemble_key(small(seed=5, lam=3.0, lr=0.01))
    assert ensemble_key(base) != ensemble_key(small(hidden=(20,)))
    for other in (small(optimizer="adam"), small(arch="cnn"), small(stream="split", tasks=2),
                  small(ewc_form="separate")):
        assert ensemble_key(other) is None
    with pytest.raises(ValueError, match="one common"):
        run_ensemble([base, small(hidden=(20,))])


def test_units_group_by_key_and_keep_every_job_busy():
    same = [small(seed=s) for s in range(6)]
    alone = [small(seed=s, optimizer="adam") for s in range(2)]
    got = units(same + alone, jobs=2)
    assert sorted(len(u) for u in got) == [1, 1, 3, 3]
    assert sorted(c.run_id for u in got for c in u) == sorted(c.run_id for c in same + alone)
    assert all(len(u) == 1 for u in units(same, jobs=2, batched=False))
