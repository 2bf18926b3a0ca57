"""Run configuration: frozen, typed, validated once at the edge.

A run is described by five sections (data, model, method, train, blackout). The method section
holds the method's name and only that method's own settings, which the method declares on its
class (``Method.settings``); the other sections are fixed dataclasses. Every setting has a
one-line help string that the CLI reuses, and every name is unique across sections, so a setting
can be named flat (``lam=15``) on the command line, in a TOML file or in a sweep grid. Derived
values are properties. A run's identity is a hash of its canonical JSON (less the settings added
later, ``LATER``, while at their default) and the numerics version (``numerics.py``), so a sweep knows
what it has already done, across releases that change no number or only add a setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import numerics
from .errors import ConfigError
from .experiment.verdict import MIN_TEST_IMAGES
from .files import need_file
from .settings import Setting

if TYPE_CHECKING:
    from .experiment.methods.base import Method

DATASETS = ("digits", "mnist", "fashion-mnist")
SCENARIOS = ("task", "domain", "class")
DATASET_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28)}
N_CLASSES = 10
# Bounds of the numbers a run can use. Seeds: the seeds derived from one (seed x 104729 + 3 and the like)
# must stay inside torch's 64-bit generator. Steps and epochs: a run must end. Threads: past any CPU
# sold today, and far below the tens of thousands at which starting the thread pool crashes.
MAX_SEED = 2**32 - 1
MAX_STEPS = 10**8
MAX_EPOCHS = 10**5
MAX_THREADS = 256
MAX_PAD = 16  # pixels of padding: MNIST padded by 16 is 60x60, a padded copy of 70,000 images near 1 GB


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None, check=None, expected: str = "") -> Any:
    return field(default=default, metadata={"setting": Setting(default, help, choices, check, expected)})


@dataclass(frozen=True)
class DataConfig:
    dataset: str = _f("digits", "dataset: digits (embedded, 8x8), mnist or fashion-mnist (28x28 IDX files)", DATASETS)
    stream: str = _f(
        "permuted", "task stream: permuted pixels, split classes or rotated images", ("permuted", "split", "rotated")
    )
    tasks: int = _f(10, "number of tasks in the sequence", check=lambda n: n >= 1, expected="at least 1")
    keep_first: bool = _f(False, "permuted: leave task 1 unpermuted (the original images)")
    classes_per_task: int = _f(
        2,
        "split: classes in each task (tasks x classes_per_task <= 10)",
        check=lambda n: n >= 2,
        expected="at least 2 (a one-class task is solved by a constant output)",
    )
    class_order: str = _f(
        "seeded",
        "split: which classes form each task: seeded (a random order drawn from the seed) "
        "or natural (0-1, 2-3, ...: tasks of consecutive labels, as most papers split MNIST)",
        ("seeded", "natural"),
    )
    scenario: str = _f(
        "auto",
        "what the network is told and must answer (van de Ven & Tolias 2019): task (task "
        "identity given, one head per task), domain (one shared head of classes_per_task "
        "outputs on split: first or second class of the task), class (one shared head over "
        "all classes); auto: class on split, domain on permuted and rotated, which are "
        "domain-incremental with one 10-way head and offer no other (--multi-head: task)",
        ("auto",) + SCENARIOS,
    )
    angle_step: float = _f(10.0, "rotated: task t is rotated by (t - 1) x angle_step degrees")
    train_limit: int = _f(
        0,
        "use only the first N training images (0: all); the test set is unchanged",
        check=lambda n: n >= 0,
        expected=">= 0",
    )
    data_id: str = _f(
        "",
        "the data's identity (image size, train+test counts, content hash), recorded from the data "
        "when a run or sweep is planned, so runs on different data never share a run id; a recorded "
        "one must match the data read (empty: not recorded)",
    )
    test_limit: int = _f(
        0,
        "evaluate on the first N test images of each task (0: all)",
        check=lambda n: n == 0 or n >= MIN_TEST_IMAGES,
        expected=f"0 (all) or at least {MIN_TEST_IMAGES} test images per task (fewer cannot tell learning from chance)",
    )
    pad: int = _f(
        0,
        "rows and columns of zero pixels added on every side of each image (2 makes MNIST 32x32, "
        "as Hsu et al. 2018 feed their MLP)",
        check=lambda n: 0 <= n <= MAX_PAD,
        expected=f"0 to {MAX_PAD} pixels",
    )
    normalize: bool = _f(
        False,
        "standardise the pixels by the training images' own mean and standard deviation (after "
        "padding), as most papers' data loaders do; off: pixels in [0, 1]",
    )
    mask_unseen: bool = _f(
        False,
        "class scenario: a task's loss covers only the outputs of the classes seen so far, so "
        "training never pushes down the outputs of classes still to come (Hsu et al. 2018's "
        "incremental-class setting); prediction is still over every output. Needs class_order natural",
    )

    @property
    def resolved_scenario(self) -> str:
        """The scenario in force: the one given, or the stream's own for ``auto``."""
        return natural_scenario(self.stream) if self.scenario == "auto" else self.scenario

    @property
    def multi_head(self) -> bool:
        return self.resolved_scenario == "task"

    @property
    def n_out(self) -> int:
        """Outputs of the network: a head per task (task), one task's classes (domain) or every class."""
        if self.stream != "split":
            return N_CLASSES
        return {"task": self.tasks * self.classes_per_task, "domain": self.classes_per_task}.get(
            self.resolved_scenario, N_CLASSES
        )


def natural_scenario(stream: str) -> str:
    """A stream's own scenario: class-incremental for split, domain-incremental for the input-transform streams."""
    return "class" if stream == "split" else "domain"


def scenario_of(data: dict[str, Any]) -> str:
    """The scenario of a stored config's data section, also of one written before the setting existed
    (``multi_head`` true on a split stream: task)."""
    given = data.get("scenario")
    if given in SCENARIOS:
        return given
    stream = data.get("stream", "permuted")
    return "task" if stream == "split" and data.get("multi_head") else natural_scenario(stream)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = _f("mlp", "network: mlp (fully connected) or cnn (small convolutional net)", ("mlp", "cnn"))
    hidden: tuple[int, ...] = _f(
        (100,),
        "hidden layer widths, e.g. 50 or 400,400 (cnn: widths of its dense layers)",
        check=lambda h: len(h) >= 1 and all(w >= 1 for w in h),
        expected="one or more widths >= 1",
    )
    activation: str = _f("relu", "hidden activation", ("relu", "tanh", "sigmoid"))
    channels: tuple[int, ...] = _f(
        (16, 32),
        "cnn: output channels of each 3x3 conv + 2x2 max-pool block",
        check=lambda h: len(h) >= 1 and all(w >= 1 for w in h),
        expected="one or more channel counts >= 1",
    )
    gating: float = _f(
        0.0,
        "xdg: fraction of each hidden layer silenced per task by a fixed random mask "
        "(context-dependent gating, Masse et al. 2018; the task identity is then used at "
        "test time too); 0: off",
        check=lambda g: 0 <= g < 1,
        expected="0 <= gating < 1",
    )


@dataclass(frozen=True)
class MethodConfig:
    """The method's name and its own settings (``options``: (name, value) pairs, complete, sorted)."""

    method: str = "ewc"
    options: tuple[tuple[str, Any], ...] = ()

    def __getattr__(self, name: str) -> Any:
        for key, value in object.__getattribute__(self, "options"):
            if key == name:
                return value
        raise AttributeError(f"method {self.method!r} has no setting {name!r}")

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **{k: _jsonable(v) for k, v in self.options}}


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = _f("sgd", "optimizer", ("sgd", "adam"))
    lr: float = _f(0.1, "learning rate", check=lambda v: v > 0, expected="a learning rate > 0")
    batch_size: int = _f(100, "mini-batch size", check=lambda n: n >= 1, expected="at least 1")
    iterations: int = _f(
        800,
        "optimizer steps per task (ignored when epochs > 0)",
        check=lambda n: n <= MAX_STEPS,
        expected=f"at most {MAX_STEPS:,} steps per task",
    )
    epochs: float = _f(
        0.0,
        "passes over each task's training set (0: use iterations)",
        check=lambda v: 0 <= v <= MAX_EPOCHS,
        expected=f"0 <= epochs <= {MAX_EPOCHS} (a run must end)",
    )
    seed: int = _f(
        0,
        "seed of weights, permutations, batches and Fisher labels",
        check=lambda n: 0 <= n <= MAX_SEED,
        expected=f"a seed from 0 to {MAX_SEED} (the seeds derived from it must fit torch's generator)",
    )
    eval_all: bool = _f(False, "after each task evaluate every task, also future ones (forward transfer)")
    sharpness: int = _f(
        8,
        "Lanczos steps of the sharpness measurement (top Hessian eigenvalue of the penalised "
        "loss) at the end of each task; 0: off",
        check=lambda n: n >= 0,
        expected=">= 0",
    )
    device: str = _f(
        "cpu",
        "where a run trains; part of its identity, since devices round differently "
        "(the flag also takes auto: the best one present)",
        ("cpu", "cuda", "mps"),
    )
    threads: int = _f(
        1,
        "CPU threads of one run's arithmetic; part of the run's identity because a matrix product "
        "split over more threads rounds differently (studies run one process per core instead)",
        check=lambda n: 1 <= n <= MAX_THREADS,
        expected=f"1 to {MAX_THREADS} threads",
    )
    keep_optimizer: bool = _f(
        False,
        "keep the optimizer's state (Adam's moments and step count) from task to task, as the code "
        "of Hsu et al. 2018 and Zenke et al. 2017 does; off: a fresh optimizer per task",
    )


@dataclass(frozen=True)
class BlackoutConfig:
    margin: float = _f(
        0.1,
        "blackout: every task so far scores at most its chance level + margin",
        check=lambda v: 0 <= v < 1,
        expected="0 <= margin < 1",
    )
    retain_frac: float = _f(
        0.9,
        "a task is retained while its accuracy is >= this fraction of its just-learned accuracy",
        check=lambda v: 0 < v <= 1,
        expected="0 < retain_frac <= 1",
    )
    stop_on_blackout: bool = _f(True, "stop the run at the blackout task")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "method": MethodConfig,
    "train": TrainConfig,
    "blackout": BlackoutConfig,
}
FIXED: dict[str, tuple[str, Setting]] = {
    f.name: (section, f.metadata["setting"])
    for section, cls in SECTIONS.items()
    if section != "method"
    for f in fields(cls)
}
METHOD_FIELD = Setting("ewc", "continual-learning method (see `blackout methods`)")
# Accepted for configs and archives written before ``scenario``: true means scenario task.
FIXED["multi_head"] = ("data", Setting(False, "split: one output head per task; a synonym of --scenario task"))

# Settings without effect on a run, by the condition under which they have none: the canonical
# config (and so the run id) holds their default there, so a value that changes nothing does not
# make a second run of the same numbers.
INERT: dict[str, Any] = {
    "keep_first": lambda c: c.data.stream != "permuted",
    "classes_per_task": lambda c: c.data.stream != "split",
    "class_order": lambda c: c.data.stream != "split",
    "angle_step": lambda c: c.data.stream != "rotated",
    "channels": lambda c: c.model.arch != "cnn",
    "iterations": lambda c: c.train.epochs > 0,
    "mask_unseen": lambda c: c.data.resolved_scenario != "class",
    "keep_optimizer": lambda c: c.train.optimizer == "sgd",  # plain SGD keeps no state
}
# Settings added after run ids were first stored: a run id leaves each out while it holds its default,
# so a new setting leaves every stored run's id, and what a resumed sweep finds done, as they were.
LATER = ("pad", "normalize", "mask_unseen", "keep_optimizer")


def registry() -> dict[str, type[Method]]:
    """The method registry, imported on first use: reading stored results needs no torch."""
    from .experiment.methods import registry as methods

    return methods()


def method_settings() -> dict[str, tuple[Setting, list[str]]]:
    """Every method setting name: its declaration and the methods that have it.

    Names must not clash with the fixed sections', and one name has one type across methods.
    """
    out: dict[str, tuple[Setting, list[str]]] = {}
    for name, cls in registry().items():
        for key, s in cls.settings.items():
            if key in FIXED or key == "method":
                raise ConfigError(
                    f"method {name}: setting {key!r} clashes with the {FIXED[key][0] if key in FIXED else 'method'} "
                    "section's setting of that name"
                )
            if key in out and out[key][0].kind is not s.kind:
                raise ConfigError(
                    f"method {name}: setting {key!r} is {s.describe()}, but {out[key][1][0]} declares "
                    f"it as {out[key][0].describe()}"
                )
            out.setdefault(key, (s, []))[1].append(name)
    return out


def known(name: str) -> bool:
    return name in FIXED or name == "method" or name in method_settings()


def setting_of(name: str) -> Setting:
    """The declaration of a flat setting name (for a method setting, its first declaring method's)."""
    if name == "method":
        return METHOD_FIELD
    if name in FIXED:
        return FIXED[name][1]
    return method_settings()[name][0]


def checked_setting(key: str, raw: Any, where: str = "") -> tuple[str, Any]:
    """(setting name, value in its type); errors name ``where`` the setting came from."""
    name = key.replace("-", "_") if isinstance(key, str) else key
    if not isinstance(name, str) or not known(name):
        raise ConfigError(f"{where}unknown setting {key!r} (see `blackout run --help`)")
    if name == "device" and raw == "auto":
        raw = best_device()
    return name, setting_of(name).coerce(raw, f"{where}{name}")


def best_device() -> str:
    """cuda if a CUDA GPU is present, else mps (Apple silicon), else cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=lambda: _method_config("ewc", {}))
    train: TrainConfig = field(default_factory=TrainConfig)
    blackout: BlackoutConfig = field(default_factory=BlackoutConfig)

    def __post_init__(self) -> None:
        validate(self)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_flat(
        cls, values: dict[str, Any], base: RunConfig | None = None, where: str = "", strict: bool = True
    ) -> RunConfig:
        """Build from flat ``{setting: value}`` applied over ``base`` (default config).

        ``where`` names the source (a file, "--") in error messages. A method setting the chosen
        method does not have is an error when ``strict``, else dropped (a preset's or a sweep
        base's settings apply to the methods that have them).
        """
        base = base or cls()
        given = _scenario_from_multi_head(dict(checked_setting(k, v, where) for k, v in values.items()), where)
        per_section: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS if s != "method"}
        for name, value in given.items():
            if name in FIXED:
                per_section[FIXED[name][0]][name] = value
        method = given.get("method", base.method.method)
        own = dict(base.method.options) if method == base.method.method else {}
        for name, value in given.items():
            if name not in FIXED and name != "method":
                if name in registry().get(method, _NoMethod).settings:
                    own[name] = value
                elif strict:
                    raise ConfigError(f"{where}{name}: not a setting of method {method!r} ({_settings_of(method)})")
        parts = {s: dataclasses.replace(getattr(base, s), **kw) for s, kw in per_section.items()}
        return cls(method=_method_config(method, own, where), **parts)

    @classmethod
    def from_dict(
        cls, nested: dict[str, Any], base: RunConfig | None = None, where: str = "", strict: bool = True
    ) -> RunConfig:
        """Build from ``{section: {field: value}}`` (TOML, stored JSON) or flat keys, or a mix."""
        return cls.from_flat(flat_settings(nested, where), base, where, strict)

    # -- identity -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The canonical config: the scenario in force (never ``auto``), inert settings at their default."""
        out = {
            s: {f.name: _jsonable(getattr(getattr(self, s), f.name)) for f in fields(SECTIONS[s])}
            for s in SECTIONS
            if s != "method"
        }
        out["data"]["scenario"] = self.data.resolved_scenario
        for name, idle in INERT.items():
            if idle(self):
                section, setting = FIXED[name]
                out[section][name] = _jsonable(setting.default)
        out["method"] = self.method.to_dict()
        return {s: out[s] for s in SECTIONS}

    def flat(self) -> dict[str, Any]:
        return {k: v for sec in self.to_dict().values() for k, v in sec.items()}

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit identity of (config, numerics version); settings of ``LATER`` at their
        default are left out of it."""
        d = self.to_dict()
        for name in LATER:
            section, setting = FIXED[name]
            if d[section][name] == _jsonable(setting.default):
                del d[section][name]
        payload = json.dumps(d, sort_keys=True, separators=(",", ":")) + f"|numerics={numerics.NUMERICS_VERSION}"
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def seed(self) -> int:
        return self.train.seed


class _NoMethod:
    settings: dict = {}


def _settings_of(method: str) -> str:
    names = sorted(registry().get(method, _NoMethod).settings)
    return f"its settings: {', '.join(names)}" if names else "it has no settings"


def _scenario_from_multi_head(given: dict[str, Any], where: str) -> dict[str, Any]:
    """``multi_head`` read as the scenario it meant: true is task, false the stream's own (auto)."""
    if "multi_head" not in given:
        return given
    given = dict(given)
    multi = given.pop("multi_head")
    scenario = given.get("scenario")
    if scenario not in (None, "auto") and (scenario == "task") != multi:
        raise ConfigError(
            f"{where}multi_head: {str(multi).lower()} contradicts scenario {scenario!r} "
            "(multi_head true means scenario task); give only scenario"
        )
    if scenario in (None, "auto"):
        given["scenario"] = "task" if multi else "auto"
    return given


def _method_config(method: str, own: dict[str, Any], where: str = "") -> MethodConfig:
    methods = registry()
    if method not in methods:
        raise ConfigError(f"{where}method: expected one of {', '.join(sorted(methods))}, got {method!r}")
    declared = methods[method].settings
    values = {k: s.default for k, s in declared.items()}
    values.update(own)
    return MethodConfig(method, tuple(sorted(values.items())))


def flat_settings(nested: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``{section: {field: value}}`` or flat keys, or a mix, as flat ``{field: value}``; unknown keys rejected."""
    if not isinstance(nested, dict):
        raise ConfigError(f"{where}expected a table of settings, got {type(nested).__name__}")
    flat: dict[str, Any] = {}
    given: dict[str, str] = {}  # setting name -> how it was written, to refuse a second spelling of it

    def add(k: str, v: Any, shown: str) -> None:
        name = k.replace("-", "_") if isinstance(k, str) else k
        if name in given:
            raise ConfigError(f"{where}{printable(str(name))} is given twice (as {given[name]} and as {shown})")
        given[name], flat[k] = shown, v

    for key, value in nested.items():
        if key in SECTIONS and isinstance(value, dict):
            for k, v in value.items():
                name = k.replace("-", "_")
                in_section = (
                    (FIXED.get(name, ("",))[0] == key)
                    if key != "method"
                    else (name == "method" or name in method_settings())
                )
                if not in_section:
                    raise ConfigError(f"{where}unknown setting {key}.{printable(k)}")
                add(k, v, f"{key}.{printable(k)}")
        else:
            add(key, value, printable(str(key)))
    return flat


def printable(text: str) -> str:
    """``text`` as is, or quoted with escapes if it holds a newline or another unprintable character,
    so an error stays one line."""
    return text if text.isprintable() else repr(text)


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def validate(c: RunConfig) -> None:
    """Check every setting's domain, the combinations and the sizes; raise ConfigError naming the first bad one."""
    for section in SECTIONS:
        if section == "method":
            continue
        for f in fields(SECTIONS[section]):
            f.metadata["setting"].validate(getattr(getattr(c, section), f.name), f.name)
    cls = registry()[c.method.method]
    for name, value in c.method.options:
        cls.settings[name].validate(value, name)
    d, t, b = c.data, c.train, c.blackout
    if t.iterations < 1 and t.epochs == 0:
        raise ConfigError(f"iterations: expected at least 1 (or epochs > 0), got {t.iterations}")
    if d.stream == "split" and d.tasks * d.classes_per_task > N_CLASSES:
        raise ConfigError(
            f"tasks: a split stream needs tasks x classes_per_task <= {N_CLASSES} classes, "
            f"got {d.tasks} x {d.classes_per_task}"
        )
    if d.stream != "split" and d.resolved_scenario != "domain":
        raise ConfigError(
            f"scenario: a {d.stream} stream is domain-incremental (one {N_CLASSES}-way head for every "
            f"task); task and class scenarios need stream split, got {d.resolved_scenario}"
        )
    if d.mask_unseen and d.resolved_scenario == "class" and d.class_order != "natural":
        raise ConfigError(
            "mask_unseen: masks the outputs after the classes seen so far, so it needs class_order "
            f"natural (tasks of consecutive labels), got class_order {d.class_order}"
        )
    per_task = d.classes_per_task if d.stream == "split" else N_CLASSES
    if 1 / per_task + b.margin >= 1:
        raise ConfigError(
            f"margin: expected chance + margin < 1 (chance is about 1/{per_task} on tasks of {per_task} "
            f"classes, so every run would count as collapsed), got {b.margin}"
        )
    if t.device != "cpu" and best_device() == "cpu" or t.device == "mps" and best_device() == "cuda":
        raise ConfigError(
            f"device: {t.device} is not available on this machine (use cpu, or auto for the best one present)"
        )
    if c.model.gating and c.model.arch != "mlp":
        raise ConfigError(f"gating: context-dependent gating masks MLP hidden units, got arch {c.model.arch!r}")
    if t.sharpness > n_params_estimate(c):  # Lanczos finds at most one new direction per parameter
        raise ConfigError(
            f"sharpness: expected at most {_count(n_params_estimate(c))} Lanczos steps (the network's "
            f"parameters), got {t.sharpness}"
        )
    cls.check(c)
    _check_size(c)


def n_params_estimate(c: RunConfig) -> int:
    """Parameters of one network, from the dataset's image size and the widths."""
    ch, h, w = image_shape(c.data)
    n_out = c.data.n_out
    if c.model.arch == "cnn":
        total, prev = 0, ch
        for k in c.model.channels:
            total += prev * k * 9 + k
            prev = k
            if min(h, w) >= 2:
                h, w = h // 2, w // 2
        width = prev * h * w
    else:
        total, width = 0, ch * h * w
    for size in (*c.model.hidden, n_out):
        total += width * size + size
        width = size
    return total


def image_shape(d: DataConfig) -> tuple[int, int, int]:
    """(channels, height, width) of the images a run sees: its dataset's, padded."""
    ch, h, w = DATASET_SHAPES[d.dataset]
    return ch, h + 2 * d.pad, w + 2 * d.pad


def _check_size(c: RunConfig) -> None:
    """Refuse runs whose accuracy matrix or weights cannot fit in this machine's memory, before any work."""
    memory = _physical_memory()
    if not memory:
        return
    tasks = c.data.tasks
    matrix = 8 * tasks * tasks * 3  # the matrix, its JSON text and the result's copy of it
    if matrix > memory:
        raise ConfigError(
            f"tasks: {_count(tasks)} tasks need an accuracy matrix of about {_gib(matrix)} GiB, "
            f"more than this machine's {memory / 2**30:.1f} GiB"
        )
    weights = 4 * n_params_estimate(c) * 8  # the weights, their gradients and the method's state
    if weights > memory:
        raise ConfigError(
            f"hidden: a network of {_count(n_params_estimate(c))} parameters needs about "
            f"{_gib(weights)} GiB for its weights and their state, more than this machine's "
            f"{memory / 2**30:.1f} GiB"
        )
    k = c.train.sharpness
    probe = 4 * 8 * k * k  # the sharpness probe's k x k tridiagonal matrix, built densely, and its copies
    if probe > memory:
        raise ConfigError(
            f"sharpness: {k:,} Lanczos steps need about {_gib(probe)} GiB, more than this machine's "
            f"{memory / 2**30:.1f} GiB"
        )


def _count(n: int) -> str:
    """``n`` with thousands separators, or past 10^300 its power of ten: such a number overflows a float
    and may pass Python's 4300-digit limit on printing an int."""
    return f"{n:,}" if n < 10**300 else f"10^{(n.bit_length() - 1) * 0.30103:.0f}"


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f}" if n_bytes < 10**300 else _count(n_bytes // 2**30)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing, unreadable or malformed file raises ConfigError naming it and the line."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    p = Path(path)
    name = printable(str(p))
    need_file(p, "a TOML file", name)  # a FIFO or a device is refused unopened: reading one blocks
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, expected a TOML file") from None
    except OSError as e:
        raise ConfigError(f"{name}: cannot read config file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name}: not UTF-8 text (byte {e.start}); expected a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{name}: not valid TOML ({e})") from None
    except ValueError as e:  # an integer past Python's digit limit, which the TOML reader does not catch
        raise ConfigError(f"{name}: not valid TOML ({str(e).split(';')[0]})") from None
    except RecursionError:  # the reader recurses once per level of nested arrays and inline tables
        raise ConfigError(f"{name}: not valid TOML (nested too deeply for the TOML reader)") from None
