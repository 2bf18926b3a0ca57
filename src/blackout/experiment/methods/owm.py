"""Orthogonal Weight Modification (Zeng, Chen, Cui & Yu, Nature Machine Intelligence 2019, Eqs. 4-8).

Each layer keeps a projector P (d x d, d = its inputs + 1) onto the directions its past inputs have
not used, updated by recursive least squares at every step with the batch's mean input r:

    k = P r,   P <- P - k k^T / (alpha + r^T k),   P_0 = I,

so after inputs r_1..r_n it is P = alpha (alpha I + X^T X)^-1 = I - X^T (X X^T + alpha I)^-1 X
(X: the r_i as rows), a soft projector off their span. Every weight step is taken through it,
W <- W - lr G P: directions old inputs used hardly move, and ``alpha`` sets how hard: small alpha
projects almost exactly (rigid), large alpha approaches plain SGD (plastic), a continuum the
penalties' trade-off can be read against.

Why OWM rather than Adam-NSCL (Wang et al., CVPR 2021): the findings' question is whether a
method without stored data leaves the line along which every penalty trades what it keeps for
what it still learns, at the protocol's plain SGD. OWM runs with plain SGD, keeps one projector
per layer without any SVD, and its alpha moves it along a rigidity-plasticity line of its own,
while GPM (``gpm.py``) gives the hard-threshold projection; Adam-NSCL projects an Adam step into
the near-null space of the same uncentred input covariance, i.e. a soft GPM that needs Adam.

Conventions, against the official code (github.com/beijixiong3510/OWM, ``Shuffled MNIST``): P
starts at I and alpha is constant (1.0 as there); P is updated with the current batch before its
step, as there; the bias is the weight on a constant input 1 and is projected with W (their biases
are not trained at all); their small L2 term on the weights is left out. Plain SGD only.
"""

from __future__ import annotations

import torch

from ...settings import Setting
from .base import kept
from .gpm import Projection, right_multiply_, with_ones


class OWM(Projection):
    name = "owm"
    settings = {
        "alpha": Setting(
            1.0,
            "owm: regulariser alpha of the recursive projector (small: rigid, large: plastic)",
            check=lambda a: a > 0,
            expected="alpha > 0",
        )
    }
    stacked = ("P", "alpha")

    def __init__(self, configs, net):
        super().__init__(configs, net)
        device = net.weights[0].device
        self.alpha = self.value("alpha").to(device)
        self.P = [torch.eye(w.shape[2] + 1, device=device).expand(self.M, -1, -1).clone() for w in net.weights]
        self.x = None

    def batch(self, net, x, y, task):
        self.x = x  # the projectors take this batch's layer inputs before its step (``adjust``)
        return x, y

    @torch.no_grad()
    def adjust(self, net, grads, task) -> None:
        _, inputs = net.forward_cached(self.x)
        for l, (P, a) in enumerate(zip(self.P, inputs)):
            absorb_(P, with_ones(a).mean(1), self.alpha)
            right_multiply_(grads[2 * l], grads[2 * l + 1], lambda g, P=P: torch.bmm(g, P))

    def consolidate(self, net, task, data):
        out = super().consolidate(net, task, data)
        for m, d in enumerate(out):
            # 1 - trace(P) / d: the share of the input space closed to new steps (exactly rank / d as alpha -> 0)
            d["subspace_use"] = [1 - float(P[m].diagonal().sum()) / P.shape[1] for P in self.P]
        return out

    def memory(self):
        return [kept(sum(P[0].numel() for P in self.P)) for _ in range(self.M)]


def absorb_(P: torch.Tensor, r: torch.Tensor, alpha: torch.Tensor) -> None:
    """P <- P - P r r^T P / (alpha + r^T P r) per member, in place: P (M, d, d) symmetric, r (M, d), alpha (M,).

    Written as products and row sums, not as matrix-vector ``bmm`` (whose kernel, and so its rounding,
    changes with M): a member's projector is then the same alone and in a group."""
    k = (P * r.unsqueeze(1)).sum(2)  # P r, (M, d)
    c = 1 / (alpha + (r * k).sum(1))
    P.sub_(c.view(-1, 1, 1) * k.unsqueeze(2) * k.unsqueeze(1))
