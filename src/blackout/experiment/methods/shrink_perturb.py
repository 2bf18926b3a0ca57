"""Shrink and perturb (Ash & Adams, NeurIPS 2020, "On warm-starting neural network training", Sec. 4).

Before each task after the first, every weight is shrunk toward zero and perturbed by Gaussian
noise, theta <- shrink * theta + noise * eps with eps ~ N(0, 1): shrinking rescales the network
(keeping what it predicts, up to a softmax temperature) while restoring the gradient magnitudes
of a fresh network, and the noise breaks the symmetry that shrinking alone keeps. It targets the
loss of plasticity of warm-started training, not forgetting.
"""

from __future__ import annotations

import torch

from ...settings import Setting
from .base import Method


class ShrinkPerturb(Method):
    name = "shrink-perturb"
    settings = {
        "shrink": Setting(
            0.9,
            "factor the weights are multiplied by before each new task",
            check=lambda s: 0 < s <= 1,
            expected="0 < shrink <= 1",
        ),
        "noise": Setting(
            0.01,
            "standard deviation of the Gaussian noise added before each new task",
            check=lambda s: s >= 0,
            expected="noise >= 0",
        ),
    }

    @torch.no_grad()
    def begin_task(self, net, task, data) -> None:
        if task.index == 0:
            return
        shrink, noise = self.value("shrink"), self.value("noise")
        for p in net.params():
            eps = torch.stack([torch.randn(p.shape[1:], generator=g) for g in self.gens]).to(p)
            p.mul_(self.per_member(shrink, p)).add_(self.per_member(noise, p) * eps)
