"""Shared fixtures: paths to the data at hand and small, fast run configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from blackout.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and tests must not fight over the two cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mnist_dir() -> Path:
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST test files not found in {SHARED_MNIST}")
    return SHARED_MNIST


def small(**kw) -> RunConfig:
    """A digits run of a few seconds."""
    base = {"dataset": "digits", "stream": "permuted", "tasks": 3, "hidden": (32,), "iterations": 150,
            "batch_size": 64, "method": "ewc", "lam": 15.0}
    base.update(kw)
    return RunConfig.from_flat(base)
