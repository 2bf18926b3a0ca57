"""Continual backpropagation (Dohare et al., Nature 2024, "Loss of plasticity in deep continual learning").

Plain SGD plus generate-and-test on the hidden units of an MLP. Every step, each unit's
contribution utility, u <- eta u + (1 - eta) |h| mean_k |w_out,k| (its mean absolute activation
over the batch times the mean magnitude of its outgoing weights), and its mean activation are
updated, and its age grows by one. Units older than the maturity threshold are eligible; each step
adds replacement_rate x (eligible units) to a running count, and whenever the count reaches a
whole unit that many eligible units with the lowest bias-corrected utility u / (1 - eta^age) are
re-initialised: incoming weights drawn afresh from the initial distribution (PyTorch's default,
U(-1/sqrt(in), 1/sqrt(in))), incoming bias 0, outgoing weights 0, and the next layer's bias
absorbs the unit's mean contribution, so the network's output does not jump. Defaults as the paper
uses on permuted MNIST: replacement rate 1e-4, maturity 100 steps, decay 0.99. The fractional
count is carried over (the reference code's ``accumulate`` option), so no extra randomness enters.
"""

from __future__ import annotations

import math

import torch

from ...errors import ConfigError
from ...settings import Setting
from .base import Method, kept


class CBP(Method):
    name = "cbp"
    settings = {
        "replacement_rate": Setting(
            1e-4,
            "fraction of mature hidden units re-initialised per step",
            check=lambda r: 0 <= r < 1,
            expected="0 <= replacement_rate < 1",
        ),
        "maturity": Setting(
            100,
            "steps a unit must age before it may be replaced",
            check=lambda m: 0 <= m < 2**63,
            expected="0 <= maturity < 2^63 (compared with 64-bit ages)",
        ),
        "utility_decay": Setting(
            0.99, "decay eta of the running utility", check=lambda e: 0 < e < 1, expected="0 < utility_decay < 1"
        ),
    }
    stacked = ("util", "mean_act", "ages", "count", "rate")

    def __init__(self, configs, net):
        super().__init__(configs, net)
        widths = list(net.sizes[1:-1])
        self.eta = configs[0].method.utility_decay
        self.maturity = configs[0].method.maturity
        self.rate = self.value("replacement_rate")
        device = net.weights[0].device
        self.util = [torch.zeros(self.M, w, device=device) for w in widths]
        self.mean_act = [torch.zeros(self.M, w, device=device) for w in widths]
        self.ages = [torch.zeros(self.M, w, device=device) for w in widths]
        self.count = [torch.zeros(self.M, dtype=torch.float64) for _ in widths]
        self.replaced = [0] * self.M

    @classmethod
    def check(cls, cfg) -> None:
        if cfg.model.arch != "mlp":
            raise ConfigError(f"method: cbp re-initialises hidden units of an MLP, got arch {cfg.model.arch!r}")

    @torch.no_grad()
    def after_step(self, net, step) -> None:
        eta = self.eta
        for l, h in enumerate(step.inputs[1:]):  # each hidden layer's output (M, B, width)
            w_out = net.weights[l + 1]  # (M, out, width)
            self.ages[l].add_(1)
            self.util[l].mul_(eta).add_((1 - eta) * h.abs().mean(1) * w_out.abs().mean(1))
            self.mean_act[l].mul_(eta).add_((1 - eta) * h.mean(1))
            eligible = self.ages[l] > self.maturity
            self.count[l] += self.rate.double() * eligible.sum(1).cpu()
            due = self.count[l].floor()
            if bool((due >= 1).any()):
                for m in (due >= 1).nonzero().squeeze(1).tolist():
                    self._replace(net, l, m, int(due[m]), eligible[m])
                self.count[l] -= due

    def _replace(self, net, l: int, m: int, n: int, eligible: torch.Tensor) -> None:
        candidates = eligible.nonzero().squeeze(1)
        n = min(n, len(candidates))
        if n == 0:
            return
        corrected = self.util[l][m, candidates] / (1 - self.eta ** self.ages[l][m, candidates])
        units = candidates[torch.topk(-corrected, n).indices]
        w_in, b_in = net.weights[l], net.biases[l]
        w_out, b_out = net.weights[l + 1], net.biases[l + 1]
        bound = 1 / math.sqrt(w_in.shape[2])
        fresh = (torch.rand(n, w_in.shape[2], generator=self.gens[m]) * (2 * bound) - bound).to(w_in)
        mean = self.mean_act[l][m, units] / (1 - self.eta ** self.ages[l][m, units])
        b_out[m] += (w_out[m][:, units] * mean).sum(1)
        w_out[m][:, units] = 0
        w_in[m][units] = fresh
        b_in[m][units] = 0
        self.util[l][m, units] = 0
        self.mean_act[l][m, units] = 0
        self.ages[l][m, units] = 0
        self.replaced[m] += n

    def consolidate(self, net, task, data):
        out = super().consolidate(net, task, data)
        for m, d in enumerate(out):
            d["units_replaced"] = self.replaced[m]
        return out

    def memory(self):
        return [kept(3 * sum(u.shape[1] for u in self.util)) for _ in range(self.M)]  # utility, mean, age per unit

    def select(self, keep):
        super().select(keep)
        self.replaced = [self.replaced[i] for i in keep]
