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


def method_setup(method: str, tasks: int, fisher_samples: int, **kw):
    """(config, stream, model, method object) for a permuted-digits stream, outside the run loop."""
    from blackout.data.sources import load_dataset
    from blackout.data.streams import Stream
    from blackout.methods import METHODS
    from blackout.models import build_model

    cfg = small(method=method, tasks=tasks, stream="permuted", fisher_samples=fisher_samples, **kw)
    stream = Stream(cfg.data, load_dataset("digits"), 0)
    torch.manual_seed(0)
    model = build_model(cfg.model, (1, 8, 8), 10)
    return cfg, stream, model, METHODS[method](cfg, model)


def jiggle(model, scale: float = 0.05, seed: int = 0) -> None:
    """Move every weight by seeded noise, as training between consolidations would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
