"""Context-dependent gating (XdG; Masse, Grant & Freedman, PNAS 2018).

Each task gets its own fixed random mask over every hidden layer: a fraction ``gating`` of the
units is silenced (output 0, so no gradient reaches their weights) while the task is trained and
whenever it is evaluated. Tasks then share only part of the network, which allocates capacity
instead of protecting it; combined with a penalty (Masse et al. used EWC and SI) it kept permuted
MNIST accuracy high over 100 tasks. The masks need the task identity at test time, so a gated run
is a task-aware scenario, reported as such.
"""

from __future__ import annotations

import torch


def task_masks(widths: list[int], tasks: int, gating: float, seed: int) -> list[list[torch.Tensor]]:
    """masks[t][l]: (width_l,) 0/1 float mask of task t, layer l; round((1 - gating) x width) units kept."""
    g = torch.Generator().manual_seed(seed * 104729 + 3)
    out = []
    for _ in range(tasks):
        layer_masks = []
        for w in widths:
            keep = max(1, round((1 - gating) * w))
            mask = torch.zeros(w)
            mask[torch.randperm(w, generator=g)[:keep]] = 1.0
            layer_masks.append(mask)
        out.append(layer_masks)
    return out


class Gates:
    """Every member's masks; ``use(net, t)`` sets task t's masks on a ``StackedMLP``."""

    def __init__(self, widths: list[int], tasks: int, gating: float, seeds: list[int]):
        self.per_member = [task_masks(widths, tasks, gating, s) for s in seeds]

    def use(self, net, t: int) -> None:
        device = net.weights[0].device
        net.gates = [
            torch.stack([m[t][l] for m in self.per_member]).to(device) for l in range(len(self.per_member[0][t]))
        ]

    def select(self, keep: list[int]) -> None:
        self.per_member = [self.per_member[i] for i in keep]
