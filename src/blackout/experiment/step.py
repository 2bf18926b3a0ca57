"""One training step's arithmetic: the loss, its gradients and the parameter update.

Two ways to the gradients, chosen per run (never per group), with the same result up to rounding
(tests compare them with a plain autograd step):

- the **fused** step, for a ``StackedMLP`` whose method keeps the default loss: the
  cross-entropy's logit gradient p - e_y in closed form, backpropagated by hand with one ``bmm``
  per product, and, with plain SGD, the update folded into the weight-gradient product
  (``StackedMLP.fused_sgd_``), so no weight gradient is ever materialised and a quadratic
  penalty costs one fused multiply-add per weight tensor (``Method.maps``);
- the **autograd** step, for everything else (CNNs, methods with their own ``loss``, Adam).

Updates are plain SGD or Adam written out, so per-member learning rates broadcast over a stack
and no ``torch.optim`` (whose import of ``torch._dynamo`` costs about 0.8 s a process) is needed.
"""

from __future__ import annotations

import math

import torch

from .methods.base import Method, Step
from .models import StackedMLP, _affine_


def fused_ok(net, method: Method) -> bool:
    return isinstance(net, StackedMLP) and type(method).fused()


def cross_entropy_parts(logits: torch.Tensor, y: torch.Tensor, head: tuple[int, int] | None):
    """(log p of each target (M, B, 1), logit gradient of the summed loss p - e_y (M, B, C))."""
    z = logits if head is None else logits[..., head[0] : head[1]]
    logp = z.log_softmax(-1)
    target = y.unsqueeze(-1)
    logp_y = logp.gather(-1, target)
    d = logp.exp_().scatter_add_(-1, target, _minus_ones(target))
    if head is not None:
        wide = torch.zeros_like(logits)
        wide[..., head[0] : head[1]] = d
        d = wide
    return logp_y, d


_ONES: dict[tuple, torch.Tensor] = {}


def _minus_ones(like: torch.Tensor) -> torch.Tensor:
    key = (tuple(like.shape), like.device)
    if key not in _ONES:
        _ONES[key] = torch.full(like.shape, -1.0, device=like.device)
    return _ONES[key]


def loss_grads(
    net, method: Method, x: torch.Tensor, y: torch.Tensor, task
) -> tuple[torch.Tensor, list[torch.Tensor], list | None]:
    """The per-member loss (M,), the gradients of its sum in ``net.params()`` order, and (fused) layer inputs."""
    if fused_ok(net, method):
        logits, inputs = net.forward_cached(x)
        logp_y, d = cross_entropy_parts(logits, y, task.head_range)
        d.div_(y.shape[1])
        return logp_y.squeeze(-1).mean(1).neg(), net.grads(d, inputs), inputs
    leaves = net.params() if isinstance(net, StackedMLP) else list(net.parameters())
    with torch.enable_grad():
        loss = method.loss(net, x, y, task)
        grads = torch.autograd.grad(loss.sum(), leaves)
    if not isinstance(net, StackedMLP):
        grads = tuple(g.unsqueeze(0) for g in grads)
    return loss.detach(), list(grads), None


def update(net, method: Method, opt, x: torch.Tensor, y: torch.Tensor, task) -> torch.Tensor:
    """One training step of every member; returns the losses to average, (M, k): the mean over k is the loss."""
    pre, post = method.maps()
    if fused_ok(net, method) and isinstance(opt, SGD) and not method.needs_grads:
        logits, inputs = net.forward_cached(x)
        logp_y, d = cross_entropy_parts(logits, y, task.head_range)
        net.fused_sgd_(d.mul_(opt.scale(y.shape[1])), inputs, pre, post)
        method.after_step(net, Step(None, inputs))
        return logp_y.squeeze(-1).neg()
    loss, grads, inputs = loss_grads(net, method, x, y, task)
    method.adjust(net, grads, task)
    params = net.params()
    with torch.no_grad():
        _affine(params, pre)
        opt.step(params, grads)
        _affine(params, post)
    method.after_step(net, Step(grads, inputs))
    return loss.unsqueeze(1)


def _affine(params: list[torch.Tensor], maps) -> None:
    if maps is not None:
        for p, m in zip(params, maps):
            _affine_(p, m)


class SGD:
    """p <- p - lr g, with one learning rate per member."""

    def __init__(self, params: list[torch.Tensor], lr: torch.Tensor):
        self.lr = lr
        self.neg_lr = [Method.per_member(-lr, p) for p in params]
        self._scale: dict[int, torch.Tensor] = {}

    def scale(self, batch: int) -> torch.Tensor:
        """lr / batch per member, shaped (M, 1, 1): turns the summed logit gradient into the fused step."""
        if batch not in self._scale:
            self._scale[batch] = (self.lr / batch).view(-1, 1, 1).to(self.neg_lr[0].device)
        return self._scale[batch]

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        for p, g, a in zip(params, grads, self.neg_lr):
            p.addcmul_(g, a)

    def select(self, keep: list[int]) -> None:
        """Keep the learning rates of members ``keep`` (a stack that sheds members)."""
        self.lr, self.neg_lr, self._scale = self.lr[keep], [a[keep] for a in self.neg_lr], {}


class Adam:
    """Adam (Kingma & Ba 2015) as ``torch.optim.Adam`` computes it, betas (0.9, 0.999), eps 1e-8."""

    def __init__(self, params: list[torch.Tensor], lr: torch.Tensor, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr = [Method.per_member(lr, p) for p in params]
        self.b1, self.b2, self.eps, self.t = betas[0], betas[1], eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for p, g, m, v, lr in zip(params, grads, self.m, self.v, self.lr):
            m.lerp_(g, 1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            denom = (v.sqrt() / math.sqrt(c2)).add_(self.eps)
            p.addcdiv_(m * (lr / c1), denom, value=-1)

    def select(self, keep: list[int]) -> None:
        """Keep the moments and learning rates of members ``keep`` (a stack that sheds members)."""
        self.m, self.v, self.lr = ([t[keep] for t in ts] for ts in (self.m, self.v, self.lr))


def make_optimizer(name: str, params: list[torch.Tensor], lr: torch.Tensor):
    """An optimizer over ``params``: made per task, so Adam's moments carry no task's statistics into the
    next, unless a run keeps its optimizer (``keep_optimizer``, as some papers' code does)."""
    return Adam(params, lr) if name == "adam" else SGD(params, lr)
