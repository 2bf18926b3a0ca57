"""Online EWC (Schwarz et al., "Progress & Compress", ICML 2018, Eq. 8).

One running Fisher F* <- gamma F* + F_t and one anchor (the weights after the last task), so
memory does not grow with tasks; gamma < 1 lets old importance fade.
"""

from .ewc import task_fisher
from .quadratic import Quadratic


class OnlineEWC(Quadratic):
    name = "online-ewc"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.decay = cfg.method.gamma

    def importance(self, model, task, stream):
        return task_fisher(self, model, task, stream)
