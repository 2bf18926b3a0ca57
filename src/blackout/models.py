"""Networks: an MLP from a list of widths and a small CNN. Nothing continual-learning specific.

Multi-head streams use one output layer of ``heads x classes`` units; a task reads its own slice
(see ``Task.head_slice``), so every model has a single output tensor and one code path.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig

ACTIVATION = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def mlp(in_features: int, hidden: tuple[int, ...], out: int, activation: str) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATION[activation]()]
        width = h
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


def cnn(in_shape: tuple[int, int, int], channels: tuple[int, ...], hidden: tuple[int, ...], out: int, activation: str) -> nn.Sequential:
    """Conv 3x3 (same padding) + activation + 2x2 max-pool per entry of ``channels``, then an MLP head.

    Pooling stops once the map is 1x1, so the 8x8 digits take up to three blocks.
    """
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for ch in channels:
        layers += [nn.Conv2d(c, ch, 3, padding=1), ACTIVATION[activation]()]
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = ch
    head = mlp(c * h * w, hidden, out, activation)
    return nn.Sequential(*layers, *head)


def build_model(cfg: ModelConfig, in_shape: tuple[int, int, int], n_out: int) -> nn.Sequential:
    """``in_shape`` is (C, H, W); ``n_out`` counts every head's units."""
    if cfg.arch == "cnn":
        return cnn(in_shape, cfg.channels, cfg.hidden, n_out, cfg.activation)
    c, h, w = in_shape
    return mlp(c * h * w, cfg.hidden, n_out, cfg.activation)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flat_params(model: nn.Module) -> torch.Tensor:
    """All parameters as one detached 1-D vector (for finiteness checks and anchors)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])
