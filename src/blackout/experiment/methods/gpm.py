"""Gradient Projection Memory (Saha, Garg & Roy, ICLR 2021, Eqs. 5-9 and Algorithm 1).

After each task, every layer's inputs on ``gpm_samples`` random training samples of the task form
a representation matrix R (d x n, one column per sample). Its part outside the stored basis U,
R^ = R - U U^T R, is summarised by an SVD, and the leading k left singular vectors of R^ join U,
k the fewest for which the energy U already explains plus theirs reaches the layer's threshold:
(||U U^T R||^2 + s_1^2 + ... + s_k^2) / ||R||^2 >= threshold (Eq. 9; with U empty, Eq. 5). Later
gradients of the layer's weights move only orthogonally to span U: G <- G - G U U^T. A layer's
output on an input a changes by dW a, so an old task's inputs inside span U see no change, and
neither does anything they feed. What is kept is the bases, not samples (``memory``).

Conventions, against the official code (github.com/sahagobinda/GPM, ``main_pmnist.py``):

- its MLP has no biases. Here a bias is the weight on a constant input 1: R has a row of ones
  (d = inputs + 1) and [W b] is projected as one matrix, which keeps the guarantee with biases;
- every layer is projected, the output layer too, with its permuted-MNIST thresholds: 0.95 for
  the first layer (``threshold``), 0.99 for the later ones (``threshold_hidden``), constant over
  tasks (its CIFAR runs raise them with the task), and R from 300 samples, as its code;
- for the first task's basis its code keeps one direction fewer than Eq. 5 asks (r = #{k: cumulative
  energy < threshold}); here Eqs. 5 and 9 hold on every task;
- it needs plain SGD: Adam's per-coordinate scaling would take the step out of the complement.

``max_basis`` < 1 caps each layer's basis at that fraction of d, so at least the rest of the
input space stays free for new tasks: past the cap the directions of least energy are released
(forgetting their tasks in part, on purpose). A direction's energy is s^2 when it joined, times
``basis_decay`` for every task since, so with a decay below 1 the oldest directions go first.
"""

from __future__ import annotations

import math

import torch

from ...errors import ConfigError
from ...settings import Setting
from .base import Method, kept


def _fraction(help: str, default: float) -> Setting:
    return Setting(default, help, check=lambda v: 0 < v <= 1, expected="a fraction in (0, 1]")


class Projection(Method):
    """What the projection methods share: they act on an MLP's layers, on the gradients, before a plain
    SGD step (Adam's per-weight scaling would take the step out of the projected subspace)."""

    needs_grads = True

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.model.arch != "mlp":
            raise ConfigError(f"method: {cls.name} projects the layers of an MLP, got arch {cfg.model.arch!r}")
        if cfg.train.optimizer != "sgd":
            raise ConfigError(
                f"optimizer: {cls.name} needs sgd (Adam's per-weight scaling would take the step out of "
                f"the projected subspace), got {cfg.train.optimizer!r}"
            )


class GPM(Projection):
    name = "gpm"
    settings = {
        "threshold": _fraction("gpm: energy of the first layer's inputs a task's basis must explain", 0.95),
        "threshold_hidden": _fraction("gpm: energy of the later layers' inputs a task's basis must explain", 0.99),
        "gpm_samples": Setting(
            300,
            "gpm: training samples whose layer inputs summarise a task",
            check=lambda n: n >= 1,
            expected="at least 1",
        ),
        "max_basis": _fraction(
            "gpm: largest basis per layer, as a fraction of its input dimension; past it "
            "the directions of least energy are released",
            1.0,
        ),
        "basis_decay": _fraction(
            "gpm: factor on a stored direction's energy per later task (with max_basis < 1, "
            "the oldest directions are released first)",
            1.0,
        ),
    }

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.dims = [w.shape[2] + 1 for w in net.weights]  # inputs + the bias's constant 1
        # per member and layer: the basis (d, k) and each direction's energy (k,), float64 on the CPU
        self.bases = [
            [(torch.zeros(d, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)) for d in self.dims]
            for _ in configs
        ]
        # per layer and member: the basis (1, d, k) the step projects with, on the run's device. Not one
        # (M, d, k_max) stack padded with zeros: the padding changes the products' kernels and so their
        # rounding, and a member's numbers would depend on its group's largest basis
        self.U: list[list[torch.Tensor]] = []
        self.device = net.weights[0].device

    @torch.no_grad()
    def adjust(self, net, grads, task) -> None:
        for l, Us in enumerate(self.U):
            if any(U.shape[2] for U in Us):
                right_multiply_(
                    grads[2 * l],
                    grads[2 * l + 1],
                    lambda g, Us=Us: torch.cat([project(g[m : m + 1], U) for m, U in enumerate(Us)]),
                )

    @torch.no_grad()
    def consolidate(self, net, task, data):
        x, _ = data.sample(task.index, self.configs[0].method.gpm_samples, self.gens)
        _, inputs = net.forward_cached(x)  # each layer's input, (M, n, in)
        eps = [self.value("threshold"), self.value("threshold_hidden")]
        cap, decay = self.value("max_basis"), self.value("basis_decay")
        for m, layers in enumerate(self.bases):
            for l, a in enumerate(inputs):
                R = with_ones(a[m]).double().cpu().T  # (d, n)
                U, energy = layers[l]
                layers[l] = grow(
                    U, energy * float(decay[m]), R, float(eps[min(l, 1)][m]), math.floor(float(cap[m]) * self.dims[l])
                )
        self._place()
        self.tasks_seen += 1
        return [{"subspace_use": [U.shape[1] / d for (U, _), d in zip(layers, self.dims)]} for layers in self.bases]

    def _place(self) -> None:
        self.U = [
            [layers[l][0].to(self.device, torch.float32).contiguous().unsqueeze(0) for layers in self.bases]
            for l in range(len(self.dims))
        ]

    def memory(self) -> list[dict[str, int]]:
        """The bases and their energies: sum over layers of k (d + 1) floats; no samples."""
        return [kept(sum(U.numel() + e.numel() for U, e in layers)) for layers in self.bases]

    def select(self, keep) -> None:
        super().select(keep)
        self.bases = [self.bases[i] for i in keep]
        if self.U:
            self._place()


def project(g: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """g (I - U U^T) for one member: g (1, out, d), U (1, d, k) with orthonormal columns."""
    return g - torch.bmm(torch.bmm(g, U), U.transpose(1, 2)) if U.shape[2] else g


def with_ones(a: torch.Tensor) -> torch.Tensor:
    """Layer inputs (..., n, in) with the bias's constant input appended: (..., n, in + 1)."""
    return torch.cat([a, torch.ones(*a.shape[:-1], 1, dtype=a.dtype, device=a.device)], -1)


def right_multiply_(gw: torch.Tensor, gb: torch.Tensor, fn) -> None:
    """[gW gb] <- fn([gW gb]) in place: a layer's weight and bias gradients, gw (M, out, in) and gb (M, out),
    as one (M, out, in + 1) matrix acting on the input with its constant 1 (projections act on its right)."""
    g = fn(torch.cat([gw, gb.unsqueeze(2)], 2))
    gw.copy_(g[..., :-1])
    gb.copy_(g[..., -1])


def grow(U: torch.Tensor, energy: torch.Tensor, R: torch.Tensor, threshold: float, cap: int):
    """The basis after one task: (U (d, k'), energy (k',)) from U (d, k), its energies and R (d, n).

    Adds the fewest leading singular directions of R - U U^T R for which the energy explained
    reaches ``threshold`` of ||R||^2 (GPM Eqs. 5 and 9), then keeps at most ``cap`` directions,
    those of most energy.
    """
    total = R.pow(2).sum()
    if total <= 0:
        return U, energy
    residual = R - U @ (U.T @ R)
    V, s, _ = torch.linalg.svd(residual, full_matrices=False)
    share = s.pow(2) / total
    explained = 1 - share.sum()  # what span U already explains
    before = explained + torch.cumsum(share, 0) - share  # explained before direction i is added
    k = int((before < threshold).sum())
    U, energy = torch.cat([U, V[:, :k]], 1), torch.cat([energy, s[:k].pow(2)])
    if U.shape[1] > cap:
        top = torch.argsort(energy, descending=True, stable=True)[:cap].sort().values
        U, energy = U[:, top], energy[top]
    return U, energy
