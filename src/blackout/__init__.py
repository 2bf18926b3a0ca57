"""blackout: how many tasks a network learns one after another, why it stops, and what makes it learn more.

The Python API (``run``, ``plan``, ``Study``, ``config``, ``register_method``, ``Method``, ``Result``) is
imported on first use, so ``import blackout`` and the command line start without loading torch.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("blackout")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"

_API = {
    "run": "api",
    "plan": "api",
    "Study": "api",
    "config": "api",
    "register_method": "api",
    "RunConfig": "config",
    "Result": "experiment.result",
    "ResultSet": "study.results",
    "Method": "experiment.methods.base",
    "Setting": "settings",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module 'blackout' has no attribute {name!r}")
