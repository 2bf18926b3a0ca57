"""Plasticity diagnostics of an MLP: is the network still able to learn?

Measured after each task on probe inputs (the first test images of the task just learned):

- ``dead_units``: fraction of ReLU hidden units whose output is 0 on every probe input: they pass no
  gradient, so they can never learn again (Dohare et al. 2024; Lyle et al. 2023);
- ``saturated_units``: for tanh and sigmoid, the fraction whose output is within 0.01 of a bound
  on every probe input (their gradient vanishes); None for ReLU;
- ``effective_rank``: exp of the entropy of the normalised singular values of the last hidden
  layer's representation (Roy & Vetterli 2007), the number of directions the features still span;
- ``weight_norm``: the Frobenius norm of each layer's weight matrix; steadily growing weights are
  another mark of plasticity loss (Kumar et al. 2023).
"""

from __future__ import annotations

import torch

from .models import StackedMLP

PROBE = 512


@torch.no_grad()
def measure(net, x: torch.Tensor) -> list[dict]:
    """One dict per member; ``x`` (M, N, ...) probe inputs. Empty dicts for networks other than an MLP."""
    if not isinstance(net, StackedMLP):
        return [{} for _ in range(x.shape[0])]
    _, inputs = net.forward_cached(x)
    hidden = inputs[1:]  # each hidden layer's output (M, N, width)
    # units a gating mask silences for this task are not counted: they are off by design
    live = (
        torch.cat(
            [g.amax(1) for g in net.gates]  # (M, width): a unit counts if some sample's gate keeps it
            if net.gates is not None
            else [torch.ones(h.shape[0], h.shape[2], device=h.device) for h in hidden],
            1,
        )
        > 0
    )
    n_live = live.sum(1).clamp_min(1)
    if net.activation == "relu":
        dead = ((torch.cat([(h <= 0).all(1) for h in hidden], 1) & live).sum(1) / n_live).tolist()
        saturated = [None] * net.M
    else:
        lo, hi = (-1.0, 1.0) if net.activation == "tanh" else (0.0, 1.0)
        dead = [0.0] * net.M
        stuck = torch.cat([((h - lo).abs() < 0.01).all(1) | ((hi - h).abs() < 0.01).all(1) for h in hidden], 1)
        saturated = ((stuck & live).sum(1) / n_live).tolist()
    ok = torch.isfinite(hidden[-1]).flatten(1).all(1).cpu()  # a diverged member has no meaningful rank
    s = torch.linalg.svdvals(torch.where(ok[:, None, None], hidden[-1], 0.0).double().cpu())  # (M, min(N, width))
    p = s / s.sum(1, keepdim=True).clamp_min(1e-300)
    entropy = -(p * p.clamp_min(1e-300).log()).sum(1)
    rank = entropy.exp()
    norms = torch.stack([w.detach().flatten(1).norm(dim=1) for w in net.weights], 1).cpu()  # (M, layers)
    return [
        {
            "dead_units": dead[m],
            "saturated_units": saturated[m],
            "effective_rank": float(rank[m]) if ok[m] else None,
            "weight_norm": norms[m].tolist(),
        }
        for m in range(net.M)
    ]
