"""The published-table presets expand to the papers' protocols, as recorded in docs/published/*.toml.

The presets are written out in blackout.presets; these tests read the papers' values from the
data files, so a change of a default or a preset that breaks a reproduction fails here.
"""

from pathlib import Path

import pytest

from blackout.api import Study
from blackout.config import load_toml
from blackout.presets import PUBLISHED_ROWS

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "published"
HSU = load_toml(PUBLISHED / "hsu2018.toml")
ZENKE = load_toml(PUBLISHED / "zenke2017.toml")
# blackout's penalty is (lambda/2) sum A (theta - mu)^2; the papers' code writes reg_coef sum A (...)^2.
# EWC, online EWC and L2 keep A = the Fisher or ones (lambda = 2 reg_coef), SI and MAS A = 2 Omega.
LAMBDA_PER_REG_COEF = {"EWC": 2.0, "Online EWC": 2.0, "L2": 2.0, "SI": 1.0, "MAS": 1.0}


def _configs(name):
    """(scenario, method, optimizer) -> configs of the study preset, over every seed."""
    out = {}
    for c in Study("unused").spec(name).configs():
        out.setdefault((c.data.resolved_scenario, c.method.method, c.train.optimizer), []).append(c)
    return out


def test_hsu2018_preset_runs_every_row_with_the_papers_protocol():
    p = HSU["protocol"]
    configs = _configs("hsu2018-split-mnist")
    assert sum(len(v) for v in configs.values()) == len(PUBLISHED_ROWS["hsu2018-split-mnist"]) * HSU["source"]["runs"]
    for (scenario, row), settings in PUBLISHED_ROWS["hsu2018-split-mnist"].items():
        assert row.split(" (")[0] in HSU["table"][scenario]  # "GEM (without rehearsal)" stands for "GEM"
        runs = configs[(scenario, settings["method"], settings.get("optimizer", p["method_optimizer"]))]
        assert sorted(c.seed for c in runs) == list(range(HSU["source"]["runs"]))
        c = runs[0]
        d, m, t = c.data, c.model, c.train
        assert (d.dataset, d.stream, d.tasks, d.classes_per_task) == (
            p["dataset"],
            "split",
            p["tasks"],
            p["classes_per_task"],
        )
        assert d.class_order == "natural" and p["class_order"] == "0-1, 2-3, 4-5, 6-7, 8-9"
        assert (d.pad, d.normalize) == (2, True) and p["input"].startswith("28x28 padded to 32x32")
        recorded = c.flat()  # as a result records them: settings without effect at their defaults
        assert recorded["keep_optimizer"] == (not p["reset_optimizer"] and t.optimizer != "sgd")  # SGD keeps no state
        assert recorded["mask_unseen"] == (p["class_head_masking"] and scenario == "class")
        assert m.hidden == tuple(p["hidden"]) and m.arch == "mlp" and m.activation == "relu"
        assert (t.batch_size, t.epochs) == (p["batch_size"], p["epochs"])
        if row in ("Adam", "SGD"):
            assert [t.optimizer, t.lr] == p["optimizer"][row]
        elif row.startswith("GEM"):
            assert (t.optimizer, t.lr, c.method.memory) == (p["gem_optimizer"], p["gem_lr"], p["rehearsal_memory"])
            assert c.method.memory_strength == p["gem_memory_strength"]
            # their rehearsal shares one head; with a head per task blackout's GEM runs without it
            assert c.method.rehearse == (p["gem_rehearse"] and scenario != "task")
        else:
            assert (t.optimizer, t.lr) == (p["method_optimizer"], p["method_lr"])
        if row in LAMBDA_PER_REG_COEF:
            assert c.method.lam == LAMBDA_PER_REG_COEF[row] * HSU["reg_coef"][scenario][row]
        if row == "Online EWC":
            assert c.method.gamma == p["online_ewc_gamma"]
        if row in ("EWC", "Online EWC"):
            assert c.method.fisher_samples >= 60000  # every training sample of the task
            assert c.method.fisher_labels == p["fisher_labels"]
        if row == "SI":
            assert c.method.xi == p["si_damping"]
        if row == "Naive rehearsal":
            assert c.method.memory == p["rehearsal_memory"]


def _study_file(name: str) -> list[str]:
    return sorted(c.run_id for c in Study("unused").spec(spec_file=PUBLISHED.parent / "studies" / name).configs())


def test_hsu2018_study_files_split_the_preset_into_its_gem_rows_and_the_others():
    """docs/studies/hsu2018-gem.toml runs the GEM rows alone and hsu2018-others.toml the rest but GEM's
    single-head rows: the preset's own runs (the same run ids), so their studies pool with it."""
    preset = Study("unused").spec("hsu2018-split-mnist").configs()
    gem, others = _study_file("hsu2018-gem.toml"), _study_file("hsu2018-others.toml")
    assert len(gem) == 3 * HSU["source"]["runs"]
    assert gem == sorted(c.run_id for c in preset if c.method.method == "gem")
    single_head_gem = [c for c in preset if c.method.method == "gem" and c.data.scenario != "task"]
    assert len(others) == len(preset) - 2 * HSU["source"]["runs"]
    assert others == sorted({c.run_id for c in preset} - {c.run_id for c in single_head_gem})


def test_hsu2018_table_holds_every_scenario_and_the_rows_blackout_runs():
    assert set(HSU["table"]) == {"task", "domain", "class"}
    for scenario, rows in HSU["table"].items():
        assert all(len(v) == 2 and 0 < v[0] <= 100 and v[1] >= 0 for v in rows.values())
        ours = {row for sc, row in PUBLISHED_ROWS["hsu2018-split-mnist"] if sc == scenario}
        assert {"Adam", "SGD", "L2", "EWC", "Online EWC", "SI", "MAS"} <= ours


def test_zenke2017_preset_is_the_papers_permuted_mnist_protocol():
    p = ZENKE["protocol"]
    configs = _configs("zenke2017-permuted-mnist")
    si = configs[("domain", "si", "adam")][0]
    sgd = configs[("domain", "sgd", "adam")][0]
    for c in (si, sgd):
        d, m, t = c.data, c.model, c.train
        assert (d.dataset, d.stream, d.tasks) == (p["dataset"], "permuted", p["tasks"])
        assert m.hidden == tuple(p["hidden"]) and m.activation == p["activation"]
        assert (t.optimizer, t.lr, t.batch_size, t.epochs) == (p["optimizer"], p["lr"], p["batch_size"], p["epochs"])
        assert t.keep_optimizer == (not p["reset_optimizer"])
    assert (si.method.lam, si.method.xi) == (p["c"], p["xi"])  # SI's lambda is c (A = 2 Omega)


def test_zenke2017_numbers_name_every_row_and_end_their_curves():
    """Each preset row has the figure run's number; each curve (the average over the tasks seen so far)
    has one value per task and ends at that number."""
    table, curve = ZENKE["table"]["domain"], ZENKE["curve"]["domain"]
    assert {row.split(" (")[0] for _, row in PUBLISHED_ROWS["zenke2017-permuted-mnist"]} == set(table) == set(curve)
    for row, (mean,) in table.items():
        assert len(curve[row]) == ZENKE["protocol"]["tasks"] and curve[row][-1] == mean
        assert all(0 < v <= 100 for v in curve[row])


@pytest.mark.parametrize("name", sorted(PUBLISHED_ROWS))
def test_published_presets_run_to_the_end_unmeasured_extras_off(name):
    """An average over every task needs every task run; the sharpness probe only costs time."""
    for runs in _configs(name).values():
        assert all(not c.blackout.stop_on_blackout and c.train.sharpness == 0 for c in runs)
