"""Shared fixtures: paths to the data at hand and small, fast run configs."""

from __future__ import annotations

import sqlite3
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
    """A digits run of a few seconds; method settings the method does not have are dropped, as in a sweep."""
    base = {
        "dataset": "digits",
        "stream": "permuted",
        "tasks": 3,
        "hidden": (32,),
        "iterations": 150,
        "batch_size": 64,
        "method": "ewc",
    }
    base.update(kw)
    return RunConfig.from_flat(base, strict=False)


def method_setup(method: str, tasks: int = 3, seeds=(0,), **kw):
    """(configs, streams, stacked net, method object) for a permuted-digits stream, outside the run loop."""
    from blackout.experiment.data.sources import load_dataset
    from blackout.experiment.data.streams import Streams
    from blackout.experiment.methods import registry
    from blackout.experiment.models import build_net

    configs = [small(method=method, tasks=tasks, seed=s, **kw) for s in seeds]
    streams = Streams(configs[0].data, load_dataset("digits"), list(seeds))
    net = build_net(configs[0].model, (1, 8, 8), 10, list(seeds))
    return configs, streams, net, registry()[method](configs, net)


def jiggle(net, scale: float = 0.05, seed: int = 0) -> None:
    """Move every weight by seeded noise, as training between consolidations would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.params():
            p.add_(scale * torch.randn(p.shape, generator=g))


def member_module(net, m: int = 0):
    """Member ``m`` of a StackedMLP as a plain ``nn.Sequential`` with the same weights (an independent model)."""
    from blackout.experiment.models import mlp

    model = mlp(net.sizes[0], tuple(net.sizes[1:-1]), net.sizes[-1], net.activation)
    linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
    with torch.no_grad():
        for layer, w, b in zip(linears, net.weights, net.biases):
            layer.weight.copy_(w[m])
            layer.bias.copy_(b[m])
    return model


def store_rows(db: Path, status: str) -> dict[str, float]:
    """{run_id: finished} of a study's runs in ``status``, read while a sweep may still be creating its
    store (no file yet, or a file without its table: none)."""
    if not db.exists():
        return {}
    with sqlite3.connect(db) as c:
        if not c.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
            return {}
        return dict(c.execute("SELECT run_id, finished FROM runs WHERE status = ?", (status,)).fetchall())
