"""A new method is one file: a user's own module registers it, and it runs in run, a sweep and the report."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import blackout
from blackout.experiment.methods import METHODS

TOY = '''
"""Gradient scaling: every step's gradient times a factor (a toy method from outside the package)."""
from blackout import Method, Setting, register_method


@register_method
class Scale(Method):
    name = "toy-scale"
    settings = {"factor": Setting(0.5, "gradient scale", check=lambda v: v > 0, expected="factor > 0")}
    needs_grads = True

    def adjust(self, net, grads, task):
        for g in grads:
            g.mul_(self.per_member(self.value("factor"), g))
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_method.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_method")
    yield module
    METHODS.pop("toy-scale", None)
    sys.modules.pop("toy_method", None)


def test_a_user_method_runs_sweeps_and_reports(toy, tmp_path):
    common = dict(dataset="digits", tasks=2, hidden=16, iterations=60, batch_size=64)
    halved = blackout.run(method="toy-scale", factor=0.5, lr=0.2, **common)
    assert halved.method == "toy-scale" and halved.method_settings == {"factor": 0.5}
    plain = blackout.run(method="sgd", lr=0.1, **common)  # lr 0.2 x gradient 0.5 is the step of lr 0.1
    np.testing.assert_allclose(halved.acc, plain.acc, atol=0.02, equal_nan=True)
    full = blackout.run(method="toy-scale", factor=1.0, lr=0.2, **common)  # the setting does change training
    assert full.diagnostics[0]["train_loss"] != halved.diagnostics[0]["train_loss"]
    with pytest.raises(blackout.errors.ConfigError, match="factor: expected factor > 0, got -1.0"):
        blackout.run(method="toy-scale", factor=-1, **common)

    study = blackout.Study(tmp_path / "st")
    report = study.sweep(method="toy-scale", factor=[0.5, 1.0], jobs=2, **common)  # workers import toy_method
    assert (report.ran, report.failed) == (2, 0)
    frame = study.frame()
    assert sorted(frame["factor"]) == [0.5, 1.0] and set(frame["method"]) == {"toy-scale"}
    page = study.report().read_text()
    assert "toy-scale factor=0.5" in page and "toy-scale factor=1" in page


def test_a_blackout_methods_entry_point_is_found_without_importing_anything(tmp_path):
    (tmp_path / "toy_plugin.py").write_text(
        TOY.replace("@register_method\n", "").replace('"toy-scale"', '"toy-plugin"')
    )
    info = tmp_path / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[blackout.methods]\ntoy = toy_plugin:Scale\n")
    code = textwrap.dedent("""
        import sys; sys.path.insert(0, sys.argv[1])
        from blackout.cli import main
        raise SystemExit(main(["run", "--method", "toy-plugin", "--factor", "0.25", "--tasks", "1", "--iterations", "20",
                               "--hidden", "8", "--json", "--out", sys.argv[1] + "/r"]))
    """)
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert '"method": {"method": "toy-plugin", "factor": 0.25}' in p.stdout


def test_a_method_defined_in_a_script_or_notebook_sweeps_in_process(tmp_path):
    """No worker process can import ``__main__``: such a sweep runs its units in the calling process."""
    script = TOY.replace('"toy-scale"', '"main-scale"') + textwrap.dedent(f"""
        import blackout
        study = blackout.Study({str(tmp_path / "st")!r})
        report = study.sweep(method="main-scale", factor=[0.5, 1.0], dataset="digits", tasks=1, iterations=20,
                             hidden=8, jobs=2)
        print(report.ran, report.failed, sorted(study.frame()["factor"]))
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "2 0 [0.5, 1.0]"
