"""Networks as stacks of M members: M runs that share an architecture train as one model.

Every network here takes inputs shaped (M, B, ...) and returns logits (M, B, C), and lists its
parameters with a leading member dimension, so methods, the training step and evaluation are
written once for one run (M = 1) and for a batched ensemble (M > 1) alike.

- ``StackedMLP``: weights (M, out, in), biases (M, out); one ``baddbmm`` per layer. It has a
  manual forward/backward (``forward_cached``/``backward``) used by the fused training step, the
  exact per-sample gradient statistics (Fisher, MAS) and hidden-unit gating (XdG); its autograd
  ``forward`` is the reference those are tested against. Each member's slice of a ``bmm`` is
  computed by the same kernel whatever M is, so a member's numbers do not depend on its group.
- ``ModuleNet``: any ``nn.Module`` (the CNN) as a stack of one, trained through autograd.

Initial weights are PyTorch's defaults for ``nn.Linear``/``nn.Conv2d``, drawn per member from its
seed, so a run starts from the same weights alone or in a group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ..config import ModelConfig
    from .gating import Gates

ACTIVATION = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def mlp(in_features: int, hidden: tuple[int, ...], out: int, activation: str) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATION[activation]()]
        width = h
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


def cnn(
    in_shape: tuple[int, int, int], channels: tuple[int, ...], hidden: tuple[int, ...], out: int, activation: str
) -> nn.Sequential:
    """Conv 3x3 (same padding) + activation + 2x2 max-pool per entry of ``channels``, then an MLP head.

    Pooling stops once the map is 1x1, so the 8x8 digits take up to three blocks.
    """
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for ch in channels:
        layers += [nn.Conv2d(c, ch, 3, padding=1), ACTIVATION[activation]()]
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = ch
    head = mlp(c * h * w, hidden, out, activation)
    return nn.Sequential(*layers, *head)


def _act(name: str, z: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return z.clamp_min(0)
    return torch.tanh(z) if name == "tanh" else torch.sigmoid(z)


def _act_grad_(name: str, dh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """dz = dh * act'(z) from the activation's output ``h`` (for tanh and sigmoid written into ``dh``)."""
    if name == "relu":
        return torch.ops.aten.threshold_backward(dh, h, 0)  # one kernel: dh where h > 0, else 0
    if name == "tanh":
        return dh.mul_(1 - h * h)
    return dh.mul_(h * (1 - h))


def _affine_(p: torch.Tensor, m) -> None:
    """p <- scale * p + shift in one kernel, for m = (scale, shift); nothing for None."""
    if m is not None:
        torch.addcmul(m[1], m[0], p, out=p)


class StackedMLP(nn.Module):
    """M MLPs of widths ``sizes`` (inputs, hidden..., outputs), stacked along a leading dimension."""

    def __init__(self, sizes: tuple[int, ...], activation: str, seeds: list[int]):
        super().__init__()
        self.sizes, self.activation, self.M = tuple(sizes), activation, len(seeds)
        members = []
        for seed in seeds:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                members.append(mlp(sizes[0], tuple(sizes[1:-1]), sizes[-1], activation))
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in members]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].weight.detach() for ls in linears])) for i in range(len(sizes) - 1)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].bias.detach() for ls in linears])) for i in range(len(sizes) - 1)
        )
        # per hidden layer (M, 1, width) 0/1 masks, or (M, B, width) when each sample has its own; None: ungated
        self.gates: list[torch.Tensor] | None = None
        self.gating: Gates | None = None  # every task's masks, which set ``gates`` (gating.py); None: ungated
        self._views()

    def _views(self) -> None:
        """Transposed weights and (M, 1, out) biases as views, made once: the step reuses them."""
        self._wt = [w.detach().transpose(1, 2) for w in self.weights]  # detached views: updates show through
        self._b3 = [b.detach().unsqueeze(1) for b in self.biases]

    @property
    def hidden_layers(self) -> int:
        return len(self.sizes) - 2

    def params(self) -> list[torch.Tensor]:
        """[W1, b1, W2, b2, ...], each (M, ...): the order every method's state follows."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(M, B, inputs) -> (M, B, outputs), through autograd (the reference path)."""
        h = x.flatten(2)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            # bmm then add, not baddbmm: baddbmm's double backward (Hessian-vector products) is ~30x slower
            h = torch.bmm(h, w.transpose(1, 2)) + b.unsqueeze(1)
            if i < self.hidden_layers:
                h = _act(self.activation, h)
                if self.gates is not None:
                    h = h * self.gates[i]
        return h

    def member(self, m: int, perm: torch.Tensor | None = None):
        """Member m alone, as a function of its inputs (1, B, ...): slices of the stacked weights.

        With ``perm`` it computes the member on inputs whose pixels are permuted (``x[..., perm]``)
        from the unpermuted inputs, by permuting the first layer's weight rows instead (in x W1^T,
        pixel perm[j] meets W1's column j): in features x width numbers moved instead of every
        image's pixels. Each output sums the same products in another order, so it equals the
        gather's within rounding.
        """
        weights = [w[m : m + 1] for w in self._wt]
        if perm is not None:
            weights[0] = weights[0].index_select(
                1, torch.empty_like(perm).scatter_(0, perm, torch.arange(len(perm), device=perm.device))
            )

        def forward(x: torch.Tensor) -> torch.Tensor:
            h = x.flatten(2)
            for i, (w, b) in enumerate(zip(weights, self._b3)):
                h = torch.baddbmm(b[m : m + 1], h, w)
                if i < self.hidden_layers:
                    h = _act(self.activation, h)
                    if self.gates is not None:
                        h = h * self.gates[i][m : m + 1]
            return h

        return forward

    @torch.no_grad()
    def forward_cached(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and each layer's input [x, h1, h2, ...], for ``backward``; no autograd."""
        h = x.flatten(2)
        inputs = [h]
        last = len(self._wt) - 1
        for i, (wt, b) in enumerate(zip(self._wt, self._b3)):
            h = torch.baddbmm(b, h, wt)
            if i < last:
                h = h.clamp_min_(0) if self.activation == "relu" else _act(self.activation, h)
                if self.gates is not None:
                    h.mul_(self.gates[i])
                inputs.append(h)
        return h, inputs

    @torch.no_grad()
    def backward(self, dlogits: torch.Tensor, inputs: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (first to last): the gradient at its output dz (M, B, out) and its input (M, B, in).

        The parameter gradients are dz^T a (weights) and the sum of dz over the batch (biases);
        callers form them (``grads``) or per-sample statistics of them (``grad_stats``).
        """
        out = []
        dz = dlogits
        for i in range(len(self.weights) - 1, -1, -1):
            a = inputs[i]
            out.append((dz, a))
            if i > 0:
                dz = _act_grad_(self.activation, torch.bmm(dz, self.weights[i]), a)
                if self.gates is not None:
                    dz.mul_(self.gates[i - 1])
        return out[::-1]

    @torch.no_grad()
    def grads(self, dlogits: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Parameter gradients of sum over the batch of <dlogits, logits>, in ``params()`` order."""
        out = []
        for dz, a in self.backward(dlogits, inputs):
            out += [torch.bmm(dz.transpose(1, 2), a), dz.sum(1)]
        return out

    @torch.no_grad()
    def fused_sgd_(self, dz: torch.Tensor, inputs: list[torch.Tensor], pre=None, post=None) -> None:
        """Backward pass and SGD update in one sweep, without materialising the weight gradients.

        ``dz`` is the logit gradient already multiplied by each member's learning rate, so
        W <- W - lr dz^T a is one ``baddbmm_`` into the weights. ``pre``/``post``: per parameter
        (scale, shift) or None, applied as theta <- scale * theta + shift before/after the step
        (a quadratic penalty's gradient or proximal step; ``Quadratic.maps``). Each layer's input
        gradient is formed from its weights before they change.
        """
        for i in range(len(self.weights) - 1, -1, -1):
            a, w, b = inputs[i], self.weights[i], self.biases[i]
            dh = torch.bmm(dz, w) if i > 0 else None
            if pre is not None:
                _affine_(w, pre[2 * i])
                _affine_(b, pre[2 * i + 1])
            w.baddbmm_(dz.transpose(1, 2), a, alpha=-1)
            b.sub_(dz.sum(1))
            if post is not None:
                _affine_(w, post[2 * i])
                _affine_(b, post[2 * i + 1])
            if dh is not None:
                dz = _act_grad_(self.activation, dh, a)
                if self.gates is not None:
                    dz.mul_(self.gates[i - 1])

    @torch.no_grad()
    def grad_stats(self, x: torch.Tensor, dlogits: torch.Tensor, stat: str) -> list[torch.Tensor]:
        """sum over samples n of stat(per-sample gradient) for each parameter: stat "sq" or "abs".

        A per-sample weight gradient of a linear layer is the outer product dz_n a_n^T, so its
        elementwise square (or absolute value) is the outer product of dz_n^2 and a_n^2 (or of
        |dz_n| and |a_n|): the sum over samples is one ``bmm``, no per-sample loop.
        """
        _, inputs = self.forward_cached(x)
        f = torch.square if stat == "sq" else torch.abs
        out = []
        for dz, a in self.backward(dlogits, inputs):
            dz2 = f(dz)
            out += [torch.bmm(dz2.transpose(1, 2), f(a)), dz2.sum(1)]
        return out

    def _apply(self, fn, *args, **kwargs):  # .to(device) moves the parameters: remake the views of them
        out = super()._apply(fn, *args, **kwargs)
        self._views()
        return out

    def select(self, keep: list[int]) -> None:
        """Keep only members ``keep`` (stopped runs leave the stack)."""
        idx = torch.tensor(keep, device=self.weights[0].device)
        with torch.no_grad():
            for plist in (self.weights, self.biases):
                for i, p in enumerate(plist):
                    plist[i] = nn.Parameter(p.index_select(0, idx))
        if self.gates is not None:
            self.gates = [g.index_select(0, idx) for g in self.gates]
        if self.gating is not None:
            self.gating.select(keep)
        self.M = len(keep)
        self._views()


class ModuleNet(nn.Module):
    """One ``nn.Module`` (M = 1) behind the stacked interface; trained through autograd."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module, self.M, self.gates = module, 1, None
        self.gating: Gates | None = None  # gating masks MLP units only: always None here

    def params(self) -> list[torch.Tensor]:
        return [p.unsqueeze(0) for p in self.module.parameters()]  # views: in-place updates reach the module

    def member(self, m: int):
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x[0]).unsqueeze(0)

    def grad_stats(self, x: torch.Tensor, dlogits: torch.Tensor, stat: str) -> list[torch.Tensor]:
        from .fisher import module_grad_stats

        return [s.unsqueeze(0) for s in module_grad_stats(self.module, x[0], dlogits[0], stat)]


def build_net(cfg: ModelConfig, in_shape: tuple[int, int, int], n_out: int, seeds: list[int]) -> StackedMLP | ModuleNet:
    """``in_shape`` is (C, H, W); ``n_out`` counts every head's units; one member per seed."""
    if cfg.arch == "cnn":
        if len(seeds) != 1:
            raise ValueError("a CNN trains alone (one seed)")
        with torch.random.fork_rng():
            torch.manual_seed(seeds[0])
            return ModuleNet(cnn(in_shape, cfg.channels, cfg.hidden, n_out, cfg.activation))
    c, h, w = in_shape
    return StackedMLP((c * h * w, *cfg.hidden, n_out), cfg.activation, seeds)


def n_params(net: StackedMLP | ModuleNet) -> int:
    """Parameters of one member."""
    return sum(p[0].numel() for p in net.params())


def unit_counts(net: nn.Module) -> list[int]:
    return list(net.sizes[1:-1]) if isinstance(net, StackedMLP) else []
