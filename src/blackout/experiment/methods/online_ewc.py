"""Online EWC (Schwarz et al., "Progress & Compress", ICML 2018, Eq. 8).

One running Fisher A <- gamma A + F_t and one anchor (the weights after the last task), so memory
does not grow with tasks; gamma < 1 lets old importance fade, bounding A by max F / (1 - gamma).
Convention: the penalty is (lambda/2) sum A (theta - theta*)^2 with A <- gamma A + F_t, whereas
Schwarz et al. write gamma A in the penalty itself; so this lambda is gamma times theirs.
"""

from ...settings import Setting
from .ewc import task_fisher
from .quadratic import FISHER_SETTINGS, Quadratic, lam_setting

GAMMA = {
    "gamma": Setting(
        1.0,
        "decay of the running Fisher per task (1 = no decay)",
        check=lambda g: 0 < g <= 1,
        expected="0 < gamma <= 1",
    )
}


class OnlineEWC(Quadratic):
    name = "online-ewc"
    settings = {**lam_setting(15.0), **GAMMA, **FISHER_SETTINGS}
    stacked = (*Quadratic.stacked, "decay_v")

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.decay_v = self.value("gamma")

    def accumulate(self, imp):
        return [a.mul(self.per_member(self.decay_v, a)).add_(f) for a, f in zip(self.A, imp)]

    def importance(self, net, task, data):
        return task_fisher(self, net, task, data)
