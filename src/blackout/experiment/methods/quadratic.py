"""The quadratic-penalty family: (lambda/2) sum_i A_i (theta_i - mu_i)^2 + const.

EWC, online EWC, L2, L2-Init, SI, MAS and the capped and proximal variants differ only in the
importance they measure after a task, how it accumulates and how the penalty is applied; the
penalty, its constant-cost merged form, its gradient and proximal steps and the stability number
are here.

- ``anchor = "merged"`` (EWC): the sum over past tasks  sum_t F_t (theta - theta_t)^2  equals
  A theta^2 - 2 B theta + C with A = sum F_t, B = sum F_t theta_t, C = sum F_t theta_t^2, i.e.
  A (theta - B/A)^2 + (C - B^2/A). Keeping A, mu = B/A and the constant makes a step's cost and
  memory independent of the number of past tasks; the constant is kept in float64 because
  C - B^2/A cancels.
- ``anchor = "latest"`` (online EWC, L2, SI, MAS): A <- decay * A + importance, and the anchor
  is the weights after the last task. ``anchor = "initial"`` (L2-Init): the weights before task 1.
- ``apply = "gradient"``: the penalty's gradient lambda A (theta - mu) is added to the task
  gradient in closed form (no autograd graph through the penalty). ``apply = "prox"``: after each
  plain SGD step on the task loss, the exact proximal map of the penalty,
  theta <- (theta + lr lambda A mu) / (1 + lr lambda A), which contracts for every lr lambda A >= 0.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch

from ...settings import Setting
from .base import LAM_HELP, Method, kept

FISHER_SETTINGS = {
    "fisher_samples": Setting(
        200,
        "training samples used to estimate the importance (Fisher, MAS)",
        check=lambda n: n >= 1,
        expected="at least 1",
    ),
    "fisher_labels": Setting(
        "sampled",
        "Fisher labels: sampled from the model, the true (empirical) ones, "
        "the expectation over classes, or the model's most likely class (max)",
        choices=("sampled", "empirical", "expected", "max"),
    ),
}


def lam_setting(default: float, help: str = LAM_HELP) -> dict[str, Setting]:
    return {"lam": Setting(default, help, check=lambda v: v >= 0, expected="lambda >= 0")}


class Quadratic(Method):
    anchor = "latest"  # "merged", "latest" or "initial"
    apply = "gradient"  # or "prox"
    decay = 1.0  # A <- decay * A + importance
    gradient_penalty = True
    #: weight-sized vectors kept between tasks: the importance A and the anchor mu
    kept_vectors = 2
    stacked: ClassVar[tuple[str, ...]] = ("A", "mu", "B", "C", "const", "lam", "lamA", "lamAmu")

    def __init__(self, configs, net):
        super().__init__(configs, net)
        params = [p.detach() for p in net.params()]
        self.A = [torch.zeros_like(p) for p in params]
        self.mu = [p.clone() for p in params]
        # the merged form's float64 sums live on the CPU (not every device has float64)
        self.B: Any = [torch.zeros(p.shape, dtype=torch.float64) for p in params] if self.anchor == "merged" else None
        self.C = torch.zeros(self.M, dtype=torch.float64)
        self.const = torch.zeros(self.M, dtype=torch.float64)
        self.lam = self.value("lam") if "lam" in self.settings else torch.zeros(self.M)
        self.lamA: Any = None  # lambda A and lambda A mu per member, set by _coefficients
        self.lamAmu: Any = None
        self._maps: tuple[list | None, list | None] = (None, None)
        self.adam = configs[0].train.optimizer == "adam"

    @classmethod
    def check(cls, cfg) -> None:
        from ...errors import ConfigError

        if cls.apply == "prox" and cfg.train.optimizer != "sgd":
            raise ConfigError(
                f"optimizer: {cls.name} needs sgd (its proximal step assumes the plain SGD step "
                f"size), got {cfg.train.optimizer!r}"
            )

    def importance(self, net, task, data) -> list[torch.Tensor]:
        """The task's importance per parameter, (M, ...) each; measured before ``consolidate`` moves the anchor."""
        raise NotImplementedError

    def accumulate(self, imp: list[torch.Tensor]) -> list[torch.Tensor]:
        """The new accumulated importance from the old one and this task's (``decay`` x A + importance)."""
        return [a.mul(self.decay).add_(f) for a, f in zip(self.A, imp)]

    # -- after a task ------------------------------------------------------------------------
    @torch.no_grad()
    def consolidate(self, net, task, data) -> list[dict[str, Any]]:
        imp = self.importance(net, task, data)
        theta = [p.detach() for p in net.params()]
        self.A = self.accumulate(imp)
        if self.anchor == "merged":
            f64 = [f.double().cpu() for f in imp]
            th64 = [th.double().cpu() for th in theta]
            a64 = [a.double().cpu() for a in self.A]
            for b, f, th in zip(self.B, f64, th64):
                b.add_(f * th)
            self.C += cast(torch.Tensor, sum((f * th.pow(2)).flatten(1).sum(1) for f, th in zip(f64, th64)))
            for a, b, mu, th in zip(a64, self.B, self.mu, th64):
                mu.copy_(torch.where(a > 0, b / a.clamp_min(1e-300), th).to(mu))
            self.const = self.C - sum(
                torch.where(a > 0, b.pow(2) / a.clamp_min(1e-300), 0.0).flatten(1).sum(1) for a, b in zip(a64, self.B)
            )
        elif self.anchor == "latest":
            for mu, th in zip(self.mu, theta):
                mu.copy_(th)
        self.tasks_seen += 1
        self._coefficients()
        return [
            {
                "importance_mean": float(torch.cat([f[m].reshape(-1) for f in imp]).mean()),
                "importance_task_max": float(max(f[m].max() for f in imp)),
                "importance_max": float(max(a[m].max() for a in self.A)),
            }
            for m in range(self.M)
        ]

    def curvature(self) -> list[torch.Tensor]:
        """The A the penalty acts with (``ewc-capped`` clips it); the accumulated A stays intact."""
        return self.A

    def _coefficients(self) -> None:
        """Per-step constants, recomputed when the importance changes.

        With plain SGD the penalty is an affine map per weight (``maps``): the gradient step
        theta - lr (g + lambda A (theta - mu)) = (1 - lr lambda A) theta + lr lambda A mu - lr g, or
        the proximal step (theta' + lr lambda A mu) / (1 + lr lambda A) after theta' = theta - lr g.
        With Adam the gradient form's lambda A (theta - mu) is added to the gradient (``adjust``).
        """
        self.lamA = [self.per_member(self.lam, a) * a for a in self.curvature()]
        self.lamAmu = [la * mu for la, mu in zip(self.lamA, self.mu)]
        if not self.active or self.adam:
            self._maps = (None, None)
            return
        c = [self.per_member(self.lr, la) * la for la in self.lamA]
        if self.apply == "gradient":
            self._maps = ([(1 - ci, ci * mu) for ci, mu in zip(c, self.mu)], None)
        else:
            self._maps = (None, [(1 / (1 + ci), ci * mu / (1 + ci)) for ci, mu in zip(c, self.mu)])

    @property
    def active(self) -> bool:
        return self.tasks_seen > 0 and bool((self.lam > 0).any())

    # -- every step --------------------------------------------------------------------------
    def maps(self):
        return self._maps

    @torch.no_grad()
    def adjust(self, net, grads, task) -> None:
        """With Adam: grad += lambda A (theta - mu), as lambda A theta - lambda A mu."""
        if self.adam and self.apply == "gradient" and self.active:
            for g, p, la, lam_mu in zip(grads, net.params(), self.lamA, self.lamAmu):
                g.addcmul_(la, p).sub_(lam_mu)

    def select(self, keep) -> None:
        super().select(keep)
        self._coefficients()

    # -- diagnostics -------------------------------------------------------------------------
    @torch.no_grad()
    def quadratic(self, params: list[torch.Tensor]) -> torch.Tensor:
        """sum_i A_i (theta_i - mu_i)^2 per member, (M,)."""
        return sum(((p - mu).pow(2) * a).flatten(1).sum(1) for p, a, mu in zip(params, self.curvature(), self.mu))

    def memory(self):
        return [kept(self.kept_vectors * self.param_floats) for _ in range(self.M)]

    def hessian_diagonal(self):
        return self.lamA if self.active else None

    def penalty_value(self, net) -> list[float]:
        if self.tasks_seen == 0:
            return [0.0] * self.M
        q = self.quadratic([p.detach() for p in net.params()]).double().cpu() + self.const
        return (0.5 * self.lam.double() * q).tolist()

    def stability(self) -> list[float | None]:
        if self.tasks_seen == 0:
            return [0.0] * self.M
        top = torch.stack([a.flatten(1).max(1).values for a in self.curvature()]).max(0).values
        return (self.lr * self.lam * top.cpu()).tolist()
