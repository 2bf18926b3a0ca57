"""L2: (lambda/2) ||theta - theta_{t-1}||^2, every weight equally important, anchored at the last task."""

import torch

from .quadratic import Quadratic, lam_setting


class L2(Quadratic):
    name = "l2"
    settings = lam_setting(0.1)
    decay = 0.0  # A stays 1: replaced, not summed, after each task
    kept_vectors = 1  # the anchor; A is the constant 1

    def importance(self, net, task, data):
        return [torch.ones_like(p) for p in net.params()]
