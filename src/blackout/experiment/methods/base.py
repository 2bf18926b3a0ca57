"""The method interface: what a continual-learning method may do to plain SGD.

A method is one module: a subclass of ``Method`` declaring its settings and overriding a few
hooks, plus one line in the registry (``methods/__init__.py``), or ``blackout.register_method``
for a method in the user's own file. The training step calls, in order::

    x, y = method.batch(net, x, y, task)          # e.g. replay appends memory samples
    loss = method.loss(net, x, y, task)           # (M,) per member; default: cross-entropy
    grads = d loss / d params                     # the fused MLP step computes these by hand
    method.adjust(net, grads, task)               # e.g. A-GEM's projection
    pre, post = method.maps()                     # e.g. a quadratic penalty's closed-form step
    params <- pre(params) - lr * grads -> post    # (or Adam)
    method.after_step(net, step)                  # e.g. SI's path integral, unit replacement

and around each task ``begin_task(net, task, data)`` and ``consolidate(net, task, data)``; after
consolidating, ``memory()`` says what the method keeps between tasks (recorded per task).

In a gated network (``gating``) all of this runs under the current task's gate; a method that puts
samples of other tasks through the network gates them by their own tasks (``gating.use`` for a
batch it returns, ``gating.under`` for its own forward passes), as replay and A-GEM do.

Everything is stacked over M members (runs with the same architecture trained together):
parameters, gradients and method state carry a leading member dimension, and ``self.value(name)``
gives a setting's per-member values as a tensor. A method that cannot work on stacked members
sets ``batchable = False`` and then always sees M = 1. A method that overrides ``loss`` is
trained through autograd; the others also run on the fused MLP step, which never builds a graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from ...settings import Setting

if TYPE_CHECKING:
    from ...config import RunConfig
    from ..models import ModuleNet, StackedMLP

LAM_HELP = "penalty strength lambda"


@dataclass
class Step:
    """What the step that just ran computed: its gradients and, on the fused path, each layer's input."""

    grads: list[torch.Tensor] | None  # None on the fused path, which forms no gradients
    inputs: list[torch.Tensor] | None


class Method:
    name: ClassVar[str] = "base"
    settings: ClassVar[dict[str, Setting]] = {}
    batchable: ClassVar[bool] = True
    #: whether lr x lambda x max importance (``stability``) governs this method's step: true for a
    #: quadratic penalty applied through its gradient with plain SGD
    gradient_penalty: ClassVar[bool] = False
    #: attributes holding per-member state (a tensor or a list of tensors, leading dimension M)
    stacked: ClassVar[tuple[str, ...]] = ()
    #: whether ``adjust`` or ``after_step`` need the gradients (else the fused step never forms them)
    needs_grads: bool = False

    def __init__(self, configs: list[RunConfig], net: StackedMLP | ModuleNet):
        self.configs = list(configs)
        self.lr = torch.tensor([c.train.lr for c in configs])
        # Own generators: method randomness does not perturb the batch order of training.
        self.gens = [torch.Generator().manual_seed(c.train.seed * 7919 + 17) for c in configs]
        self.tasks_seen = 0
        self.param_floats = sum(p[0].numel() for p in net.params())  # one member's weights

    # -- declarations ------------------------------------------------------------------------
    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        """Reject settings this method cannot honour (raise ConfigError); called by config validation."""

    @classmethod
    def fused(cls) -> bool:
        """Whether the fused MLP step (gradients by hand, no autograd graph) can train this method."""
        return cls.loss is Method.loss

    # -- per-member values -------------------------------------------------------------------
    @property
    def M(self) -> int:
        return len(self.configs)

    def value(self, name: str) -> torch.Tensor:
        """The members' values of a numeric setting, shape (M,)."""
        return torch.tensor([float(c.method.get(name)) for c in self.configs])

    @staticmethod
    def per_member(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(M,) values shaped to broadcast against a stacked tensor ``like`` (M, ...)."""
        return v.view(-1, *[1] * (like.dim() - 1)).to(like)

    # -- hooks -------------------------------------------------------------------------------
    def batch(self, net, x: torch.Tensor, y: torch.Tensor, task) -> tuple[torch.Tensor, torch.Tensor]:
        return x, y

    def loss(self, net, x: torch.Tensor, y: torch.Tensor, task) -> torch.Tensor:
        """Per-member training loss (M,), differentiable in the net's parameters (autograd path)."""
        return task_loss(net(x), y, task)

    def adjust(self, net, grads: list[torch.Tensor], task) -> None:
        """Change the task loss's gradients in place before the update (only if ``needs_grads``)."""

    def maps(self) -> tuple[list | None, list | None]:
        """(pre, post): per parameter (scale, shift) or None, applied as theta <- scale * theta + shift
        before and after the plain SGD step; affine steps of a penalty that need no gradient."""
        return None, None

    def after_step(self, net, step: Step) -> None:
        pass

    def begin_task(self, net, task, data) -> None:
        pass

    def consolidate(self, net, task, data) -> list[dict[str, Any]]:
        """After a task; returns per-member diagnostics (importance statistics)."""
        self.tasks_seen += 1
        return [{} for _ in range(self.M)]

    def memory(self) -> list[dict[str, int]]:
        """What the method keeps between tasks, per member: ``memory_floats``, the numbers it holds
        (importances, anchors, bases, old weights, stored images), and ``memory_samples``, the training
        samples among them. Plain SGD keeps nothing."""
        return [kept(0) for _ in range(self.M)]

    def hessian_diagonal(self) -> list[torch.Tensor] | None:
        """The penalty's Hessian per parameter (M, ...) when it is diagonal (a quadratic's lambda A), else None."""
        return None

    def penalty_value(self, net) -> list[float]:
        """The penalty's current value per member (also for methods that apply it by a proximal step)."""
        return [0.0] * self.M

    def stability(self) -> list[float | None]:
        """s = lr x lambda x the largest curvature the penalty adds, per member; None if it has none."""
        return [None] * self.M

    # -- members leaving the stack -----------------------------------------------------------
    def select(self, keep: list[int]) -> None:
        idx = torch.tensor(keep)
        self.configs = [self.configs[i] for i in keep]
        self.gens = [self.gens[i] for i in keep]
        self.lr = self.lr[idx]
        for attr in self.stacked:
            value = getattr(self, attr)
            if isinstance(value, torch.Tensor):
                setattr(self, attr, value.index_select(0, idx.to(value.device)))
            elif value is not None:
                setattr(self, attr, [v.index_select(0, idx.to(v.device)) for v in value])


def task_loss(logits: torch.Tensor, y: torch.Tensor, task) -> torch.Tensor:
    """Mean cross-entropy per member over the task's head: (M, B, C), (M, B) -> (M,)."""
    head = task.head_range
    z = logits if head is None else logits[..., head[0] : head[1]]
    return F.cross_entropy(z.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)


def kept(floats: int, samples: int = 0) -> dict[str, int]:
    """One member's ``Method.memory`` entry."""
    return {"memory_floats": int(floats), "memory_samples": int(samples)}


def sample_rows(n_rows: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` distinct random positions among ``n_rows`` (all of them if there are fewer)."""
    return torch.randperm(n_rows, generator=gen)[: min(n, n_rows)]
