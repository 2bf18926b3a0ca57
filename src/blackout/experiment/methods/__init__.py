"""The method registry: name -> class. Adding a method is one module and one line here; a method
in the user's own file registers with ``blackout.register_method`` or a ``blackout.methods`` entry point.
"""

from __future__ import annotations

from .base import Method
from .cbp import CBP
from .ewc import EWC
from .ewc_capped import EWCCapped
from .ewc_l1 import EWCL1
from .ewc_prox import EWCProx
from .gem import GEM
from .gpm import GPM
from .joint import Joint
from .l2 import L2
from .l2_init import L2Init
from .lwf import LwF
from .mas import MAS
from .online_ewc import OnlineEWC
from .online_ewc_prox import OnlineEWCProx
from .owm import OWM
from .replay import AGEM, Replay
from .sgd import SGD
from .shrink_perturb import ShrinkPerturb
from .si import SI

METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in (
        SGD,
        L2,
        EWC,
        OnlineEWC,
        EWCL1,
        EWCProx,
        SI,
        MAS,
        Replay,
        AGEM,
        GEM,
        LwF,
        L2Init,
        ShrinkPerturb,
        CBP,
        OnlineEWCProx,
        EWCCapped,
        GPM,
        OWM,
        Joint,
    )
}

__all__ = ["METHODS", "Method", "register"]

_entry_points_loaded = False


def register(cls: type[Method]) -> type[Method]:
    """Add a method class (usable as a decorator); its ``name`` becomes a ``--method`` value."""
    from ...errors import ConfigError

    if (
        not (isinstance(cls, type) and issubclass(cls, Method))
        or not isinstance(cls.name, str)
        or not cls.name
        or cls.name == Method.name
    ):
        raise ConfigError(f"register_method: expected a Method subclass with its own name, got {cls!r}")
    if METHODS.get(cls.name, cls) is not cls:
        raise ConfigError(
            f"register_method: a method named {cls.name!r} is already registered "
            f"({METHODS[cls.name].__module__}.{METHODS[cls.name].__qualname__})"
        )
    METHODS[cls.name] = cls
    return cls


def registry() -> dict[str, type[Method]]:
    """Every method: the built-in ones, those registered in this process and ``blackout.methods`` entry points."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        from importlib.metadata import entry_points

        from ...errors import ConfigError

        _entry_points_loaded = True
        for ep in entry_points(group="blackout.methods"):
            try:
                register(ep.load())
            except ConfigError:
                raise
            except Exception as e:  # a plugin's import error names the plugin, not a traceback
                raise ConfigError(
                    f"entry point {ep.name} = {ep.value}: cannot load ({type(e).__name__}: {e})"
                ) from None
    return METHODS
