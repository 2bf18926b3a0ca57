"""The same runs on a CUDA GPU: agreement with the CPU, stacked groups, a sweep and every method's step.

Marked ``gpu`` and skipped, saying so, where no CUDA device is present. ``benchmarks/gpu.py`` runs
them on a GPU machine together with its timings.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from blackout.experiment.methods import registry
from blackout.experiment.train import run, run_group
from tests.conftest import small

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine"
    ),
]

# A GPU sums a product's terms in another order than the CPU: each step differs by rounding, and
# over hundreds of steps a few test images near a decision boundary may change class. 0.03 of a
# digits task's 360 test images is 10 images.
ACC_TOL = 0.03


def _agree(a, b) -> None:
    assert a.verdict.task == b.verdict.task and a.tasks_run == b.tasks_run
    assert np.allclose(a.acc, b.acc, atol=ACC_TOL, equal_nan=True), np.nanmax(np.abs(a.acc - b.acc))


def test_a_run_on_the_gpu_agrees_with_the_cpu():
    cpu, gpu = run(small(tasks=3)), run(small(tasks=3, device="cuda"))
    assert gpu.config["train"]["device"] == "cuda" and cpu.run_id != gpu.run_id
    _agree(cpu, gpu)


def test_a_stacked_group_on_the_gpu_agrees_with_its_runs_alone():
    configs = [small(tasks=3, seed=s, device="cuda") for s in range(4)]
    together = run_group(configs)
    for c, r in zip(configs, together):
        alone = run(c)
        assert r.run_id == alone.run_id
        _agree(r, alone)


def test_a_sweep_with_device_cuda(tmp_path):
    study = tmp_path / "study"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "blackout",
            "sweep",
            str(study),
            "--dataset",
            "digits",
            "--tasks",
            "2",
            "--iterations",
            "50",
            "--seeds",
            "0,1",
            "--device",
            "cuda",
            "--jobs",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "blackout",
            "export",
            str(study),
            "--format",
            "jsonl",
            "--out",
            str(tmp_path / "runs.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2 and all(r["config"]["train"]["device"] == "cuda" for r in runs)


@pytest.mark.parametrize("method", sorted(registry()))
def test_each_method_steps_on_the_gpu(method):
    kw = {"stream": "split", "multi_head": True, "tasks": 2} if method == "lwf" else {"tasks": 2}
    cpu, gpu = (
        run(small(method=method, iterations=60, **kw)),
        run(small(method=method, iterations=60, device="cuda", **kw)),
    )
    assert np.isfinite(gpu.acc[0, 0]) and gpu.acc[0, 0] > 0.3
    _agree(cpu, gpu)
