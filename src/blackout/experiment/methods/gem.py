"""GEM, Gradient Episodic Memory (Lopez-Paz & Ranzato, NeurIPS 2017, Eq. 10-11 and their code).

Each past task k keeps a slot of its training rows. Every step computes the gradient g_k of each
past task's loss on its whole slot; if the proposed gradient g has a negative dot product with any
of them, it is replaced by g~ = G^T v + g, where G (K, P) stacks the g_k and v solves GEM's dual

    min_v  1/2 v^T (G G^T + ridge I) v + g^T G^T v   subject to   v >= memory_strength.

With memory_strength 0 and no ridge, g~ is the vector closest to g with g~ . g_k >= 0 for every k
(the paper's Eq. 10). A positive memory_strength (the code's ``margin``, 0.5 in the paper's MNIST
runs) is the same projection applied to g + memory_strength sum_k g_k: it pulls every step that
interferes towards the old tasks. The ridge, 1e-3, is Hsu et al.'s (the original adds none and
stops when two memories' gradients are linearly dependent, which makes G G^T singular).

Memory, as in Hsu et al.'s code (github.com/GT-RIPL/Continual-Learning-Benchmark, agents/
exp_replay.py): ``memory`` samples in all, split equally over the tasks seen; after task t each
task keeps the first memory // t rows of one random permutation of its training rows (the original
keeps a fixed number per task instead, 256 on MNIST: the last ones its ring buffer saw). With ``rehearse`` each batch also carries memory samples,
as ``replay`` adds them: Hsu et al.'s GEM inherits naive rehearsal's training set, which holds the
memory, so their published GEM numbers are GEM and rehearsal together (their issue #1).
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import numpy as np
import torch

from ...errors import ConfigError
from ...settings import Setting
from .. import gating
from .replay import MEMORY, Memory, Replay, single_head

RIDGE = 1e-3  # added to the dual's Gram matrix (Hsu et al.'s), so quadprog sees a positive definite one


class Slots(Memory):
    """Equal slots per task: after t tasks, each task's first ``size // t`` rows in the order given."""

    def __init__(self, size: int, gen: torch.Generator):
        super().__init__(size, gen)
        self.slots: list[tuple[int, torch.Tensor]] = []  # (task, rows), in the order the tasks came

    def add(self, task: int, rows: torch.Tensor) -> None:
        self.slots.append((task, rows))
        per = self.size // len(self.slots)
        self.slots = [(k, r[:per]) for k, r in self.slots]
        self.task = torch.cat([torch.full((len(r),), k, dtype=torch.long) for k, r in self.slots])
        self.row = torch.cat([r for _, r in self.slots])
        self.seen += len(rows)


class GEM(Replay):
    name = "gem"
    settings = {
        **MEMORY,
        "memory_strength": Setting(
            0.5,
            "GEM's lower bound on the dual variables (the original code's margin): 0 is the plain projection",
            check=lambda v: v >= 0,
            expected="memory_strength >= 0",
        ),
        "rehearse": Setting(False, "also train on memory samples with each batch, as replay does (Hsu et al.'s GEM)"),
    }
    needs_grads = True

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.memories = [Slots(c.method.memory, g) for c, g in zip(configs, self.gens)]
        self.rehearse = configs[0].method.rehearse
        self.refs: list[tuple[Any, torch.Tensor, torch.Tensor]] | None = None  # past task, its slots' inputs, targets

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.method.rehearse:
            single_head(cls.name, cfg)
        try:
            import quadprog  # noqa: F401
        except ImportError:
            raise ConfigError(
                'method: gem needs quadprog, which is not installed; pip install "blackout[gem]"'
            ) from None

    def batch(self, net, x, y, task):
        return super().batch(net, x, y, task) if self.rehearse else (x, y)

    def references(self) -> list[tuple[Any, torch.Tensor, torch.Tensor]]:
        """Per past task with rows held: (task, inputs (M, n, ...), targets (M, n)), built once per task."""
        if self.refs is None:
            self.refs = []
            slots = [cast(Slots, mem).slots for mem in self.memories]
            for i, (k, r) in enumerate(slots[0]):
                if len(r):  # slots of one stack hold equally many rows: the tasks have equal sizes
                    s = self.data.members
                    xs, ys = zip(*(m.batch(m.tasks[k], "train", held[i][1]) for m, held in zip(s, slots)))
                    self.refs.append((self.data.task(k), torch.stack(xs), torch.stack(ys)))
        return self.refs

    @torch.no_grad()
    def adjust(self, net, grads, task) -> None:
        from ..step import loss_grads

        refs = []
        for past, x, y in self.references():
            if task.seen:  # mask_unseen: memory's loss over the outputs the current task's loss covers
                past = dataclasses.replace(past, seen=task.seen)
            with gating.under(net, past.index):  # each task's memory through its own gate
                refs.append(loss_grads(net, self, x, y, past)[1])
        if refs:
            project_qp_(grads, refs, self.value("memory_strength"))

    def consolidate(self, net, task, data):
        self.refs = None
        return super().consolidate(net, task, data)

    def select(self, keep):
        super().select(keep)
        self.refs = None


def solve_dual(gram: np.ndarray, gdot: np.ndarray, margin: float, ridge: float = RIDGE) -> np.ndarray:
    """GEM's dual: argmin_v 1/2 v^T (gram + ridge I) v + gdot^T v subject to v >= margin, by quadprog
    (Goldfarb-Idnani), as the reference code solves it. gram = G G^T (K, K); gdot = G g (K,)."""
    import quadprog

    K = len(gdot)
    P = 0.5 * (gram + gram.T) + ridge * np.eye(K)
    return quadprog.solve_qp(P, -gdot, np.eye(K), np.full(K, float(margin)))[0]


def project_qp_(
    grads: list[torch.Tensor], refs: list[list[torch.Tensor]], margin: torch.Tensor, ridge: float = RIDGE
) -> torch.Tensor:
    """GEM's projection per member, in place: g <- G^T v + g where some g . g_k < 0 (v from ``solve_dual``).

    grads: per parameter (M, ...); refs: per past task, per parameter (M, ...); margin: (M,).
    Returns which members were projected, (M,) bool. The dual is solved in float64, as in the reference.
    """
    g = torch.cat([q.flatten(1) for q in grads], 1)  # (M, P)
    G = torch.stack([torch.cat([r.flatten(1) for r in ref], 1) for ref in refs], 1)  # (M, K, P)
    hit = (torch.einsum("mkp,mp->mk", G, g) < 0).any(1)
    sizes = [q[0].numel() for q in grads]
    for m in hit.nonzero().flatten().tolist():
        Gm, gm = G[m].double(), g[m].double()
        gram, gdot = (Gm @ Gm.T).cpu().numpy(), (Gm @ gm).cpu().numpy()
        if not (np.isfinite(gram).all() and np.isfinite(gdot).all()):
            hit[m] = False  # a diverged member: left as it is, its NaN ends the run
            continue
        v = torch.from_numpy(solve_dual(gram, gdot, float(margin[m]), ridge)).to(Gm)
        new = torch.addmv(gm, Gm.T, v)
        for q, chunk in zip(grads, new.split(sizes)):
            q[m].copy_(chunk.view_as(q[m]))
    return hit
