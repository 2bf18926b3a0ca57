"""One declared setting: its type (from the default), default, help line, allowed values and check.

The run configuration's fixed fields and every method's own settings are declared this way, so
the command line, TOML files, sweep grids and validation all read one description. Values arrive
as TOML values or command-line strings; ``coerce`` turns them into the setting's type or raises
``ConfigError`` naming where they came from. Numbers given as text (flags, sweep ranges) must be
written plainly: ``1_0``, ``१०`` or ``inf`` are refused rather than read as something the user may not
have meant. A TOML file's numbers arrive already read by TOML's rules, where ``1_0`` is 10.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")
_KIND = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_SHORT = reprlib.Repr()  # a value as shown in a message: nested and long values cut short, so the line stays short
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 4, 80, 80


@dataclass(frozen=True)
class Setting:
    """``check(value) -> bool`` with ``expected`` the words for a failed check ("0 < gamma <= 1")."""

    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], bool] | None = None
    expected: str = ""

    @property
    def kind(self) -> type:
        """int, float, bool, str or tuple (a tuple of ints)."""
        return type(self.default)

    def describe(self) -> str:
        if self.kind is tuple:
            return "a comma-separated list of integers"
        return _KIND[self.kind]

    def coerce(self, raw: Any, what: str) -> Any:
        """``raw`` in this setting's type; ``what`` ("file.toml: lam") names it in errors."""
        try:
            if self.kind is tuple:
                items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, (list, tuple)) else [raw]
                if isinstance(raw, str) and not raw.strip():
                    raise ValueError(raw)
                return tuple(_scalar(int, x.strip() if isinstance(x, str) else x) for x in items)
            return _scalar(self.kind, raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{what}: expected {self.describe()}, got {_SHORT.repr(raw)}") from None
        except OverflowError:  # an integer beyond the largest float
            raise ConfigError(f"{what}: expected a finite number, got {raw!r}") from None

    def validate(self, value: Any, what: str) -> None:
        if self.choices and value not in self.choices:
            raise ConfigError(f"{what}: expected one of {', '.join(self.choices)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{what}: expected a finite number, got {value!r}")
        if self.check is not None and not self.check(value):
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{what}: expected {self.expected}, got {shown!r}")


def _scalar(typ: type, raw: Any) -> Any:
    if typ is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError(raw)
    if isinstance(raw, bool):
        raise ValueError(raw)
    if typ is int:
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str) and _INT.fullmatch(raw.strip()) and raw.strip().isascii():
            return int(raw.strip())
        raise ValueError(raw)
    if typ is float:
        if isinstance(raw, (int, float)):
            return float(raw)
        if isinstance(raw, str) and _FLOAT.fullmatch(raw.strip()) and raw.strip().isascii():
            return float(raw.strip())
        raise ValueError(raw)
    if typ is str:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    raise TypeError(typ)
