"""Context-dependent gating (XdG; Masse, Grant & Freedman, PNAS 2018).

Each task gets its own fixed random mask over every hidden layer: a fraction ``gating`` of the
units is silenced (output 0, so no gradient reaches their weights) while the task is trained and
whenever it is evaluated. Tasks then share only part of the network, which allocates capacity
instead of protecting it; combined with a penalty (Masse et al. used EWC and SI) it kept permuted
MNIST accuracy high over 100 tasks. The masks need the task identity at test time, so a gated run
is a task-aware scenario, reported as such.

The rule this module owns: every sample goes through its own task's gate, whatever else the
network did last. Training, consolidation and the diagnostics of task t run under task t's gate,
evaluation of task j under j's (``under``), and a sample of an old task that a method puts
through the network (a replay or A-GEM memory sample, an old head's distillation) under its own.
A gated network carries its ``Gates`` as ``net.gating``; on an ungated one (``None``) every
function here does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: what a network is gated for: one task index for every sample, an (M, B) tensor of each
#: sample's task, or None (ungated)
Tasks = int | torch.Tensor | None


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
    """Every member's masks, per hidden layer (M, tasks, width), and the tasks the network is gated for."""

    def __init__(self, widths: list[int], tasks: int, gating: float, seeds: list[int], device="cpu"):
        per_member = [task_masks(widths, tasks, gating, s) for s in seeds]
        self.table = [
            torch.stack([torch.stack([m[t][l] for t in range(tasks)]) for m in per_member]).to(device)
            for l in range(len(widths))
        ]
        self.now: Tasks = None

    def masks(self, tasks: int | torch.Tensor) -> list[torch.Tensor]:
        """Per hidden layer, the masks of ``tasks``: (M, 1, width) for one task index, (M, B, width)
        for an (M, B) tensor of task indices (each sample its own task's)."""
        if isinstance(tasks, int):
            return [tab[:, tasks : tasks + 1] for tab in self.table]
        idx = tasks.to(self.table[0].device).unsqueeze(2)
        return [tab.gather(1, idx.expand(-1, -1, tab.shape[2])) for tab in self.table]

    def select(self, keep: list[int]) -> None:
        idx = torch.tensor(keep, device=self.table[0].device)
        self.table = [tab.index_select(0, idx) for tab in self.table]
        if isinstance(self.now, torch.Tensor):
            self.now = self.now.index_select(0, idx.to(self.now.device))


def use(net, tasks: Tasks) -> None:
    """Gate ``net`` for ``tasks`` (see ``Tasks``) until the next ``use``."""
    gates = getattr(net, "gating", None)
    if gates is not None:
        gates.now = tasks
        net.gates = None if tasks is None else gates.masks(tasks)


@contextmanager
def under(net, tasks: Tasks) -> Iterator[None]:
    """``net`` gated for ``tasks`` inside the block and for what it was gated for before after it
    (recomputed then, so members that left the stack inside the block are left out)."""
    gates = getattr(net, "gating", None)
    before = gates.now if gates is not None else None
    use(net, tasks)
    try:
        yield
    finally:
        use(net, before)
