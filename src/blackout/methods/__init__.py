"""Method registry: name -> class. Adding a method is one module and one line here."""

from .base import Method
from .ewc import EWC
from .ewc_l1 import EWCL1
from .ewc_prox import EWCProx
from .l2 import L2
from .lwf import LwF
from .mas import MAS
from .online_ewc import OnlineEWC
from .replay import AGEM, Replay
from .sgd import SGD
from .si import SI

METHODS: dict[str, type[Method]] = {
    m.name: m for m in (SGD, L2, EWC, OnlineEWC, EWCL1, EWCProx, SI, MAS, Replay, AGEM, LwF)
}

__all__ = ["METHODS", "Method"]
