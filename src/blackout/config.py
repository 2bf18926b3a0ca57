"""Run configuration: frozen, typed, validated once at the edge.

A run is described by five sections (data, model, method, train, blackout). Every field has a
one-line help string that the CLI reuses, and every field name is unique across sections, so a
setting can be named flat (``lam=15``) on the command line, in a TOML file or in a sweep grid.
Derived values are properties. A run's identity is a hash of its canonical JSON and the package
version, so a sweep knows what it has already done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from . import __version__
from .errors import ConfigError

DATASETS = ("digits", "mnist", "fashion-mnist")
STREAMS = ("permuted", "split", "rotated")
ARCHS = ("mlp", "cnn")
ACTIVATIONS = ("relu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "adam")
FISHER_LABELS = ("sampled", "empirical", "expected")
EWC_FORMS = ("merged", "separate")


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    meta = {"help": help, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _f("digits", "dataset: digits (embedded, 8x8), mnist or fashion-mnist (28x28 IDX files)", DATASETS)
    stream: str = _f("permuted", "task stream: permuted pixels, split classes or rotated images", STREAMS)
    tasks: int = _f(10, "number of tasks in the sequence")
    keep_first: bool = _f(False, "permuted: leave task 1 unpermuted (the original images)")
    classes_per_task: int = _f(2, "split: classes in each task (tasks x classes_per_task <= classes)")
    multi_head: bool = _f(False, "split: one output head per task (task-incremental) instead of one shared head")
    angle_step: float = _f(10.0, "rotated: task t is rotated by t x angle_step degrees")
    train_limit: int = _f(0, "use only the first N training images (0: all); the test set is unchanged")
    test_limit: int = _f(0, "evaluate on the first N test images of each task (0: all)")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = _f("mlp", "network: mlp (fully connected) or cnn (small convolutional net)", ARCHS)
    hidden: tuple[int, ...] = _f((100,), "hidden layer widths, e.g. 50 or 400,400 (cnn: widths of its dense layers)")
    activation: str = _f("relu", "hidden activation", ACTIVATIONS)
    channels: tuple[int, ...] = _f((16, 32), "cnn: output channels of each 3x3 conv + 2x2 max-pool block")


@dataclass(frozen=True)
class MethodConfig:
    method: str = _f("ewc", "continual-learning method (see `blackout methods`)")
    lam: float = _f(15.0, "penalty strength lambda (EWC: (lambda/2) sum F (theta - theta*)^2; SI: c)")
    gamma: float = _f(1.0, "online-ewc: decay of the running Fisher per task (1 = no decay)")
    ewc_form: str = _f("merged", "ewc: one merged quadratic (constant cost) or one term per past task", EWC_FORMS)
    fisher_samples: int = _f(200, "training samples used to estimate the diagonal Fisher")
    fisher_labels: str = _f("sampled", "Fisher labels: sampled from the model, the true (empirical) ones, or the expectation over classes", FISHER_LABELS)
    xi: float = _f(0.1, "si: damping xi of the path-integral importance")
    memory: int = _f(500, "replay/agem: total episodic-memory size in samples (reservoir sampling)")
    temperature: float = _f(2.0, "lwf: distillation temperature")
    prox: bool = _f(False, "ewc-l1: apply the penalty as a proximal soft-threshold step instead of its subgradient")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = _f("sgd", "optimizer", OPTIMIZERS)
    lr: float = _f(0.1, "learning rate")
    batch_size: int = _f(100, "mini-batch size")
    iterations: int = _f(800, "optimizer steps per task (ignored when epochs > 0)")
    epochs: float = _f(0.0, "passes over each task's training set (0: use iterations)")
    seed: int = _f(0, "seed of weights, permutations, batches and Fisher labels")
    eval_all: bool = _f(False, "after each task evaluate every task, also future ones (forward transfer)")


@dataclass(frozen=True)
class BlackoutConfig:
    margin: float = _f(0.1, "blackout: every task so far scores at most chance + margin")
    retain_frac: float = _f(0.9, "a task is retained while its accuracy is >= this fraction of its just-learned accuracy")
    stop_on_blackout: bool = _f(True, "stop the run at the blackout task")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "method": MethodConfig,
    "train": TrainConfig,
    "blackout": BlackoutConfig,
}


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    blackout: BlackoutConfig = field(default_factory=BlackoutConfig)

    def __post_init__(self) -> None:
        validate(self)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_flat(cls, values: dict[str, Any], base: RunConfig | None = None, where: str = "") -> RunConfig:
        """Build from flat ``{field: value}`` settings applied over ``base`` (default config).

        ``where`` names the source (a file, "flag") in error messages.
        """
        base = base or cls()
        per_section: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for key, raw in values.items():
            name, value = checked_setting(key, raw, where)
            per_section[FIELD_SECTION[name]][name] = value
        parts = {s: dataclasses.replace(getattr(base, s), **kw) for s, kw in per_section.items()}
        return cls(**parts)

    @classmethod
    def from_dict(cls, nested: dict[str, Any], base: RunConfig | None = None, where: str = "") -> RunConfig:
        """Build from ``{section: {field: value}}`` (TOML, stored JSON) or flat keys, or a mix."""
        return cls.from_flat(flat_settings(nested, where), base, where)

    # -- identity -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: {f.name: _jsonable(getattr(getattr(self, s), f.name)) for f in fields(SECTIONS[s])} for s in SECTIONS}

    def flat(self) -> dict[str, Any]:
        return {k: v for sec in self.to_dict().values() for k, v in sec.items()}

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit identity of (config, package version)."""
        payload = self.canonical_json() + "|" + __version__
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def seed(self) -> int:
        return self.train.seed


def checked_setting(key: str, raw: Any, where: str = "") -> tuple[str, Any]:
    """(field name, value in the field's type); errors name ``where`` the setting came from."""
    name = key.replace("-", "_")
    if name not in FIELD_SECTION:
        raise ConfigError(f"{where}unknown setting {key!r} (see `blackout run --help`)")
    return name, coerce(name, raw, where)


def flat_settings(nested: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``{section: {field: value}}`` or flat keys, or a mix, as flat ``{field: value}``; unknown keys rejected."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if key in SECTIONS and isinstance(value, dict):
            for k, v in value.items():
                if k.replace("-", "_") not in {f.name for f in fields(SECTIONS[key])}:
                    raise ConfigError(f"{where}unknown setting {key}.{k}")
                flat[k] = v
        else:
            flat[key] = value
    return flat


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


FIELD_SECTION: dict[str, str] = {}
FIELD_INFO: dict[str, dataclasses.Field] = {}
FIELD_TYPE: dict[str, Any] = {}
for _section, _cls in SECTIONS.items():
    _hints = get_type_hints(_cls)
    for _fld in fields(_cls):
        assert _fld.name not in FIELD_SECTION, f"duplicate setting name {_fld.name}"
        FIELD_SECTION[_fld.name] = _section
        FIELD_INFO[_fld.name] = _fld
        FIELD_TYPE[_fld.name] = _hints[_fld.name]


def coerce(name: str, raw: Any, where: str = "") -> Any:
    """Turn a TOML value or a command-line string into the field's type, or raise ConfigError."""
    typ = FIELD_TYPE[name]
    what = f"{where}{name}"
    try:
        if get_origin(typ) is tuple:
            (inner, _) = get_args(typ)
            items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, (list, tuple)) else [raw]
            return tuple(_scalar(inner, x) for x in items if not (isinstance(x, str) and x.strip() == ""))
        return _scalar(typ, raw)
    except (TypeError, ValueError):
        expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        inner = get_args(typ)[0] if get_origin(typ) is tuple else typ
        kind = "a comma-separated list of integers" if get_origin(typ) is tuple else expected[inner]
        raise ConfigError(f"{what}: expected {kind}, got {raw!r}") from None


def _scalar(typ: type, raw: Any) -> Any:
    if typ is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return raw.lower() in ("true", "yes", "1", "on")
        raise ValueError(raw)
    if typ is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError(raw)
        return int(raw)
    if typ is float:
        if isinstance(raw, bool):
            raise ValueError(raw)
        return float(raw)
    if typ is str:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    raise TypeError(typ)


def validate(c: RunConfig) -> None:
    """Check every field's domain; raise ConfigError naming the first bad one."""
    from .methods import METHODS  # the registry; imported late to keep config import-light

    for name in FIELD_SECTION:
        choices = FIELD_INFO[name].metadata["choices"]
        value = getattr(getattr(c, FIELD_SECTION[name]), name)
        if choices and value not in choices:
            raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")

    def need(ok: bool, name: str, expected: str) -> None:
        if not ok:
            value = getattr(getattr(c, FIELD_SECTION[name]), name)
            raise ConfigError(f"{name}: expected {expected}, got {_jsonable(value)!r}")

    d, m, me, t, b = c.data, c.model, c.method, c.train, c.blackout
    need(d.tasks >= 1, "tasks", "at least 1")
    need(d.classes_per_task >= 1, "classes_per_task", "at least 1")
    need(d.train_limit >= 0, "train_limit", ">= 0")
    need(d.test_limit >= 0, "test_limit", ">= 0")
    need(len(m.hidden) >= 1 and all(w >= 1 for w in m.hidden), "hidden", "one or more widths >= 1")
    need(len(m.channels) >= 1 and all(ch >= 1 for ch in m.channels), "channels", "one or more channel counts >= 1")
    need(me.method in METHODS, "method", f"one of {', '.join(sorted(METHODS))}")
    need(me.lam >= 0, "lam", "lambda >= 0")
    need(0 < me.gamma <= 1, "gamma", "0 < gamma <= 1")
    need(me.fisher_samples >= 1, "fisher_samples", "at least 1")
    need(me.xi > 0, "xi", "xi > 0")
    need(me.memory >= 1, "memory", "at least 1 sample")
    need(me.temperature > 0, "temperature", "temperature > 0")
    need(t.lr > 0, "lr", "a learning rate > 0")
    need(t.batch_size >= 1, "batch_size", "at least 1")
    need(t.iterations >= 1 or t.epochs > 0, "iterations", "at least 1 (or epochs > 0)")
    need(t.epochs >= 0, "epochs", ">= 0")
    need(t.seed >= 0, "seed", "a seed >= 0")
    need(0 <= b.margin < 1, "margin", "0 <= margin < 1")
    need(0 < b.retain_frac <= 1, "retain_frac", "0 < retain_frac <= 1")
    METHODS[me.method].check(c)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing or malformed file raises ConfigError naming it and the line."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config file ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
