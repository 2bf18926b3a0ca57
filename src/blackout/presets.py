"""Named run configurations and study grids, as flat settings (the same names as the flags)."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

RUN_PRESETS: dict[str, dict[str, Any]] = {
    # The seed study: permuted MNIST, 784-50-10 ReLU, EWC lambda=15, plain SGD lr 0.1, batch 100,
    # 800 iterations per task, Fisher from 200 samples with labels sampled from the model.
    "seed-blog": {
        "dataset": "mnist", "stream": "permuted", "tasks": 20, "arch": "mlp", "hidden": (50,),
        "activation": "relu", "method": "ewc", "lam": 15.0, "fisher_samples": 200,
        "fisher_labels": "sampled", "optimizer": "sgd", "lr": 0.1, "batch_size": 100, "iterations": 800,
    },
    # The embedded default at a size that runs in seconds: permuted 8x8 digits.
    "digits": {
        "dataset": "digits", "stream": "permuted", "tasks": 10, "hidden": (50,), "method": "ewc",
        "lam": 15.0, "lr": 0.1, "batch_size": 100, "iterations": 300,
    },
}


def run_preset(name: str) -> dict[str, Any]:
    if name not in RUN_PRESETS:
        raise ConfigError(f"preset: expected one of {', '.join(sorted(RUN_PRESETS))}, got {name!r}")
    return dict(RUN_PRESETS[name])
