"""EWC with its curvature capped: A_i clipped at c / (lr lambda), so lr lambda max A <= c < 2.

The merged EWC penalty (Kirkpatrick et al. 2017; ``quadratic.py``) keeps its anchor mu = B / A
but acts with the curvature min(A_i, c / (lr lambda)): the stability number can never pass c,
so the explicit gradient step stays stable however many tasks accumulate, while weights whose
importance is below the cap are held exactly as by EWC. The cap is the simplest remedy the
stability explanation suggests: the divergence comes only from the few weights whose summed
Fisher outgrows 2 / (lr lambda). The penalty's reported value keeps the constant of the uncapped sum.
"""

from ...settings import Setting
from .ewc import EWC

CAP = {
    "cap": Setting(
        1.0,
        "ewc-capped: the largest stability number lr x lambda x A allowed (c < 2)",
        check=lambda c: 0 < c < 2,
        expected="0 < cap < 2",
    )
}


class EWCCapped(EWC):
    name = "ewc-capped"
    settings = {**EWC.settings, **CAP}
    stacked = (*EWC.stacked, "limit")

    def __init__(self, configs, net):
        super().__init__(configs, net)
        self.limit = self.value("cap") / (self.lr * self.lam.clamp_min(1e-30))

    def curvature(self):
        return [a.minimum(self.per_member(self.limit, a)) for a in self.A]
