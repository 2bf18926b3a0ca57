"""Run ids across releases: a new package version keeps every stored run, a new numerics version does not mix.

Each command runs as a fresh process whose ``importlib.metadata`` reports another package version,
or whose ``NUMERICS_VERSION`` is raised, through a ``sitecustomize`` module on its path (sweep
workers inherit it), so the patch reaches every reader of the version as a release would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from blackout.numerics import NUMERICS_VERSION, describe, newest
from blackout.study.results import ResultSet
from tests.factory import make_result

SITECUSTOMIZE = """
import importlib.metadata as _m, os
_version = _m.version
if os.environ.get("FAKE_BLACKOUT_VERSION"):
    _m.version = lambda name: os.environ["FAKE_BLACKOUT_VERSION"] if name == "blackout" else _version(name)
if os.environ.get("FAKE_NUMERICS_VERSION"):
    import blackout.numerics
    blackout.numerics.NUMERICS_VERSION = int(os.environ["FAKE_NUMERICS_VERSION"])
"""

GRID = ["--dataset", "digits", "--tasks", "2", "--iterations", "20", "--hidden", "8,16", "--seeds", "0", "--jobs", "1"]


@pytest.fixture
def cli(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)

    def run(*args: str, version: str | None = None, numerics: int | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
        env.pop("FAKE_BLACKOUT_VERSION", None)
        env.pop("FAKE_NUMERICS_VERSION", None)
        if version:
            env["FAKE_BLACKOUT_VERSION"] = version
        if numerics is not None:
            env["FAKE_NUMERICS_VERSION"] = str(numerics)
        return subprocess.run(
            [sys.executable, "-m", "blackout.cli", *args], capture_output=True, text=True, timeout=300, env=env
        )

    return run


def test_a_new_package_version_keeps_every_stored_run_and_a_new_numerics_version_never_mixes(cli, tmp_path: Path):
    study = str(tmp_path / "study")
    first = cli("sweep", study, *GRID)
    assert first.returncode == 0, first.stderr
    assert "2 runs · 0 already done · 2 ran" in first.stdout

    # a release: another package version, the same numerics -> nothing to train
    assert cli("--version", version="99.0.0").stdout.strip() == "blackout 99.0.0"  # the patch takes effect
    again = cli("sweep", study, *GRID, version="99.0.0")
    assert again.returncode == 0, again.stderr
    assert "2 runs · 2 already done · 0 ran" in again.stdout
    assert "numerics" not in again.stdout

    # a raised numerics version: the same grid is trained again (not refused as "another grid"), and says why
    raised = NUMERICS_VERSION + 1
    again = cli("sweep", study, *GRID, numerics=raised)
    assert again.returncode == 0, again.stderr
    assert "2 runs · 0 already done · 2 ran" in again.stdout
    assert (
        f"2 of these runs were stored by numerics version {NUMERICS_VERSION}, whose results are not "
        f"comparable with this blackout's (version {raised}): trained again"
    ) in again.stdout

    # the store now holds both: the newer runs are analysed, the older ones named and left out
    out = cli("analyze", study, "--bootstrap", "10", numerics=raised)
    assert out.returncode == 0, out.stderr
    assert (
        f"note: 2 runs from numerics version {NUMERICS_VERSION} left out: not comparable with the 2 runs "
        f"of version {raised}"
    ) in out.stdout

    # read by this blackout (as the report reads it), those newer runs are named as such
    from blackout.api import Study

    notes = Study(study).results().notes()
    assert notes[0].startswith(
        f"2 runs from numerics version {raised} (this blackout computes version {NUMERICS_VERSION}, so a sweep of the same grid trains them again)"
    )
    assert notes[1].startswith(f"2 runs from numerics version {NUMERICS_VERSION} left out")


def test_a_result_set_keeps_one_numerics_version():
    old = [make_result([[0.9]], seed=s) for s in range(3)]
    new = [make_result([[0.8]], seed=s) for s in range(2)]
    for r in old:
        r.numerics = 0
    rs = ResultSet(old + new)
    assert rs.runs == new and rs.numerics == NUMERICS_VERSION and rs.left_out == {0: 3}
    assert rs.notes() == [
        f"3 runs from numerics version 0 left out: not comparable with the 2 runs of version {NUMERICS_VERSION}"
    ]
    only_old = ResultSet(old)
    assert only_old.runs == old and only_old.left_out == {}
    assert only_old.notes()[0].startswith("3 runs from numerics version 0 (this blackout computes version")
    assert ResultSet(new).notes() == [] and ResultSet([]).notes() == []


def test_newest_and_describe():
    assert newest([]) == (None, {})
    assert newest([2, 1, 2, 0, 1]) == (2, {0: 1, 1: 2})
    assert describe(1, NUMERICS_VERSION, {}) == []


def test_a_result_without_numerics_reads_as_zero_and_round_trips():
    from blackout.experiment.result import Result

    r = make_result([[0.9]])
    d = r.to_dict()
    assert d["numerics"] == NUMERICS_VERSION
    d.pop("numerics")
    assert Result.from_dict(d).numerics == 0
    r.numerics = 3
    assert Result.from_dict(r.to_dict()).numerics == 3
