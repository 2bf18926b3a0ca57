"""Method registry: name -> class. Adding a method is one module and one line here."""

from .base import Method
from .ewc import EWC
from .l2 import L2
from .online_ewc import OnlineEWC
from .sgd import SGD

METHODS: dict[str, type[Method]] = {m.name: m for m in (SGD, L2, EWC, OnlineEWC)}

__all__ = ["METHODS", "Method"]
