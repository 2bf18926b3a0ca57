"""blackout: how many tasks a network learns one after another, why it stops, and what makes it learn more."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("blackout")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"
