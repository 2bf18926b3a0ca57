"""Online EWC applied by its exact proximal step: a bounded importance and no step-size limit.

The running Fisher of online EWC (Schwarz et al. 2018), A <- gamma A + F_t, bounds the curvature
the penalty can reach (at most max F / (1 - gamma)), so old tasks cannot make the network ever
stiffer; the implicit step of ``ewc-prox``, theta <- (theta' + lr lambda A mu) / (1 + lr lambda A),
removes the divergence that the explicit step meets once lr lambda max A > 2. Together they aim at
a network that neither blacks out nor goes rigid.
"""

from .online_ewc import OnlineEWC


class OnlineEWCProx(OnlineEWC):
    name = "online-ewc-prox"
    apply = "prox"
    gradient_penalty = False
